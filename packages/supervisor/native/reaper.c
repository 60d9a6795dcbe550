// System calls for @enclave/supervisor's reaper. Every function returns a result or -errno and
// never throws for a failed system call; the JavaScript side decides what a failure means.
#define NAPI_VERSION 8
#include <node_api.h>

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>

static napi_value make_int(napi_env env, int64_t value) {
  napi_value out;
  if (napi_create_int64(env, value, &out) != napi_ok) return NULL;
  return out;
}

// prctl(PR_SET_CHILD_SUBREAPER, 1): orphaned descendants are re-parented to this process
// instead of to PID 1, so a supervisor that is not PID 1 still has to (and can) reap them.
static napi_value set_child_subreaper(napi_env env, napi_callback_info info) {
  (void)info;
  int rc = prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
  return make_int(env, rc == 0 ? 0 : -errno);
}

// waitid(P_ALL, WEXITED | WNOHANG | WNOWAIT): the pid of one child that has ended, WITHOUT
// reaping it (it stays a zombie), 0 if none has, or -errno (-ECHILD: no children at all).
// Peeking is what lets the caller skip the children libuv spawned: libuv reaps those by pid.
static napi_value peek_exited(napi_env env, napi_callback_info info) {
  (void)info;
  siginfo_t si;
  memset(&si, 0, sizeof si);
  int rc = waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT);
  if (rc != 0) return make_int(env, -errno);
  return make_int(env, si.si_pid);
}

// waitpid(pid, WNOHANG) for one pid the caller has identified as not libuv's: the pid if it was
// reaped, 0 if it is still running, or -errno.
static napi_value reap(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int64_t pid = 0;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
      napi_get_value_int64(env, argv[0], &pid) != napi_ok || pid <= 0) {
    return make_int(env, -EINVAL);
  }
  int status = 0;
  pid_t rc = waitpid((pid_t)pid, &status, WNOHANG);
  return make_int(env, rc < 0 ? -errno : rc);
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"setChildSubreaper", NULL, set_child_subreaper, NULL, NULL, NULL, napi_default, NULL},
      {"peekExited", NULL, peek_exited, NULL, NULL, NULL, napi_default, NULL},
      {"reap", NULL, reap, NULL, NULL, NULL, napi_default, NULL},
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
