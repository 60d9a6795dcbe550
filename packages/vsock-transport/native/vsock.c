// System calls for @enclave/vsock-transport. Every function returns a result or -errno and never
// throws for a failed system call: the JavaScript side builds the typed error and owns every fd.
#define NAPI_VERSION 8
#include <node_api.h>
#include <uv.h>

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <netinet/in.h>

#ifdef __linux__
#include <linux/vm_sockets.h>
#endif

// <linux/netfilter_ipv4.h> SO_ORIGINAL_DST and <linux/netfilter_ipv6/ip6_tables.h>
// IP6T_SO_ORIGINAL_DST; both are 80. Spelled out to avoid the kernel headers' clashes with libc.
#define ENCLAVE_SO_ORIGINAL_DST 80

#define CHECK(call)                                                      \
  do {                                                                   \
    if ((call) != napi_ok) {                                             \
      napi_throw_error(env, NULL, "vsock addon: N-API call failed: " #call); \
      return NULL;                                                       \
    }                                                                    \
  } while (0)

static napi_value make_int(napi_env env, int64_t value) {
  napi_value out;
  if (napi_create_int64(env, value, &out) != napi_ok) return NULL;
  return out;
}

// Reads up to `count` uint32 arguments; JS passes CIDs and ports up to 2^32 - 1.
static int get_args(napi_env env, napi_callback_info info, size_t count, uint32_t* out, napi_value* rest) {
  napi_value argv[4];
  size_t argc = 4;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < count) {
    napi_throw_type_error(env, NULL, "vsock addon: missing arguments");
    return -1;
  }
  for (size_t i = 0; i < count; i++) {
    int64_t v;
    if (napi_get_value_int64(env, argv[i], &v) != napi_ok) {
      napi_throw_type_error(env, NULL, "vsock addon: arguments must be numbers");
      return -1;
    }
    out[i] = (uint32_t)v;
  }
  if (rest != NULL && argc > count) *rest = argv[count];
  return 0;
}

static napi_value pair(napi_env env, napi_value a, napi_value b) {
  napi_value arr;
  if (napi_create_array_with_length(env, 2, &arr) != napi_ok) return NULL;
  napi_set_element(env, arr, 0, a);
  napi_set_element(env, arr, 1, b);
  return arr;
}

#ifdef __linux__

static napi_value js_socket(napi_env env, napi_callback_info info) {
  (void)info;
  int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  return make_int(env, fd < 0 ? -errno : fd);
}

static void fill_vm(struct sockaddr_vm* addr, uint32_t cid, uint32_t port) {
  memset(addr, 0, sizeof(*addr));
  addr->svm_family = AF_VSOCK;
  addr->svm_cid = cid;
  addr->svm_port = port;
}

static napi_value js_bind(napi_env env, napi_callback_info info) {
  uint32_t a[3];
  if (get_args(env, info, 3, a, NULL) < 0) return NULL;
  struct sockaddr_vm addr;
  fill_vm(&addr, a[1], a[2]);
  int r = bind((int)a[0], (struct sockaddr*)&addr, sizeof(addr));
  return make_int(env, r < 0 ? -errno : 0);
}

static napi_value js_listen(napi_env env, napi_callback_info info) {
  uint32_t a[2];
  if (get_args(env, info, 2, a, NULL) < 0) return NULL;
  int r = listen((int)a[0], (int)a[1]);
  return make_int(env, r < 0 ? -errno : 0);
}

static napi_value js_connect(napi_env env, napi_callback_info info) {
  uint32_t a[3];
  if (get_args(env, info, 3, a, NULL) < 0) return NULL;
  struct sockaddr_vm addr;
  fill_vm(&addr, a[1], a[2]);
  int r;
  do {
    r = connect((int)a[0], (struct sockaddr*)&addr, sizeof(addr));
  } while (r < 0 && errno == EINTR);
  return make_int(env, r < 0 ? -errno : 0);
}

static napi_value vm_name(napi_env env, napi_callback_info info, int peer) {
  uint32_t a[1];
  if (get_args(env, info, 1, a, NULL) < 0) return NULL;
  struct sockaddr_vm addr;
  socklen_t len = sizeof(addr);
  memset(&addr, 0, sizeof(addr));
  int r = peer ? getpeername((int)a[0], (struct sockaddr*)&addr, &len)
               : getsockname((int)a[0], (struct sockaddr*)&addr, &len);
  if (r < 0) return make_int(env, -errno);
  if (addr.svm_family != AF_VSOCK) return make_int(env, -EAFNOSUPPORT);
  return pair(env, make_int(env, addr.svm_cid), make_int(env, addr.svm_port));
}

static napi_value js_getsockname(napi_env env, napi_callback_info info) { return vm_name(env, info, 0); }
static napi_value js_getpeername(napi_env env, napi_callback_info info) { return vm_name(env, info, 1); }

static napi_value js_local_cid(napi_env env, napi_callback_info info) {
  (void)info;
  int fd = open("/dev/vsock", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return make_int(env, -errno);
  unsigned int cid = 0;
  int r = ioctl(fd, IOCTL_VM_SOCKETS_GET_LOCAL_CID, &cid);
  int err = errno;
  close(fd);
  return make_int(env, r < 0 ? -err : (int64_t)cid);
}

static napi_value js_set_connect_timeout(napi_env env, napi_callback_info info) {
  uint32_t a[2];
  if (get_args(env, info, 2, a, NULL) < 0) return NULL;
  struct timeval tv;
  tv.tv_sec = a[1] / 1000;
  tv.tv_usec = (a[1] % 1000) * 1000;
  int r = setsockopt((int)a[0], AF_VSOCK, SO_VM_SOCKETS_CONNECT_TIMEOUT, &tv, sizeof(tv));
  return make_int(env, r < 0 ? -errno : 0);
}

#else  // not Linux: no AF_VSOCK; every call reports EAFNOSUPPORT.

static napi_value unsupported(napi_env env, napi_callback_info info) {
  (void)info;
  return make_int(env, -EAFNOSUPPORT);
}
#define js_socket unsupported
#define js_bind unsupported
#define js_listen unsupported
#define js_connect unsupported
#define js_getsockname unsupported
#define js_getpeername unsupported
#define js_local_cid unsupported
#define js_set_connect_timeout unsupported

#endif

static napi_value js_family(napi_env env, napi_callback_info info) {
  uint32_t a[1];
  if (get_args(env, info, 1, a, NULL) < 0) return NULL;
  struct sockaddr_storage addr;
  socklen_t len = sizeof(addr);
  memset(&addr, 0, sizeof(addr));
  if (getsockname((int)a[0], (struct sockaddr*)&addr, &len) < 0) return make_int(env, -errno);
  return make_int(env, addr.ss_family);
}

// SO_ORIGINAL_DST on an accepted TCP socket: [address bytes (4 or 16), port] or -errno.
static napi_value js_original_dst(napi_env env, napi_callback_info info) {
  uint32_t a[2];
  if (get_args(env, info, 2, a, NULL) < 0) return NULL;
  int fd = (int)a[0];
  napi_value bytes;
  void* data;
  if (a[1] == 6) {
    struct sockaddr_in6 addr;
    socklen_t len = sizeof(addr);
    memset(&addr, 0, sizeof(addr));
    if (getsockopt(fd, IPPROTO_IPV6, ENCLAVE_SO_ORIGINAL_DST, &addr, &len) < 0) return make_int(env, -errno);
    CHECK(napi_create_buffer_copy(env, 16, &addr.sin6_addr, &data, &bytes));
    return pair(env, bytes, make_int(env, ntohs(addr.sin6_port)));
  }
  struct sockaddr_in addr;
  socklen_t len = sizeof(addr);
  memset(&addr, 0, sizeof(addr));
  if (getsockopt(fd, IPPROTO_IP, ENCLAVE_SO_ORIGINAL_DST, &addr, &len) < 0) return make_int(env, -errno);
  CHECK(napi_create_buffer_copy(env, 4, &addr.sin_addr, &data, &bytes));
  return pair(env, bytes, make_int(env, ntohs(addr.sin_port)));
}

static napi_value js_close(napi_env env, napi_callback_info info) {
  uint32_t a[1];
  if (get_args(env, info, 1, a, NULL) < 0) return NULL;
  return make_int(env, close((int)a[0]) < 0 ? -errno : 0);
}

// waitConnected(fd, callback) -> handle or -errno: waits for the connecting fd to become writable
// ON THE EVENT LOOP (a uv_poll_t: no thread is held), then calls back with 0 or -errno (SO_ERROR).
// cancelWait(handle) ends the wait early; the callback then gets -ECANCELED. The callback runs
// only once the poll handle is closed, so JavaScript may close the fd from it, never before.
typedef struct {
  uv_poll_t poll;
  napi_env env;
  napi_ref callback;
  napi_async_context context;
  int fd;
  int result;
  int closing;  // uv_close called: the result is final
  int closed;   // the close callback ran
  int unowned;  // the JavaScript handle was collected
} wait_job;

// The job lives until both the poll handle is closed and the JavaScript handle is collected, so a
// late cancelWait on a finished wait is a harmless no-op.
static void wait_release(wait_job* job) {
  if (job->closed && job->unowned) free(job);
}

static void wait_collected(napi_env env, void* data, void* hint) {
  (void)env;
  (void)hint;
  wait_job* job = data;
  job->unowned = 1;
  wait_release(job);
}

static void wait_closed(uv_handle_t* handle) {
  wait_job* job = handle->data;
  napi_env env = job->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) == napi_ok) {
    napi_value callback, recv, argv[1];
    if (napi_get_reference_value(env, job->callback, &callback) == napi_ok &&
        napi_get_global(env, &recv) == napi_ok && (argv[0] = make_int(env, job->result)) != NULL) {
      // make_callback (not call_function): runs the microtasks the callback queues, as libuv callbacks do.
      if (napi_make_callback(env, job->context, recv, callback, 1, argv, NULL) == napi_pending_exception) {
        napi_value error;
        if (napi_get_and_clear_last_exception(env, &error) == napi_ok) napi_fatal_exception(env, error);
      }
    }
    napi_close_handle_scope(env, scope);
  }
  napi_delete_reference(env, job->callback);
  napi_async_destroy(env, job->context);
  job->closed = 1;
  wait_release(job);
}

static void wait_finish(wait_job* job, int result) {
  if (job->closing) return;
  job->closing = 1;
  job->result = result;
  uv_close((uv_handle_t*)&job->poll, wait_closed);
}

static void wait_ready(uv_poll_t* poll, int status, int events) {
  (void)events;
  wait_job* job = poll->data;
  // libuv reports POLLERR as a status; SO_ERROR names the real cause (ECONNRESET, ETIMEDOUT, ...).
  int soerr = 0;
  socklen_t len = sizeof(soerr);
  if (getsockopt(job->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0) soerr = errno;
  wait_finish(job, soerr != 0 ? -soerr : status < 0 ? status : 0);
}

static void wait_abandoned(uv_handle_t* handle) { free(handle->data); }

static napi_value js_wait_connected(napi_env env, napi_callback_info info) {
  uint32_t a[1];
  napi_value callback = NULL;
  if (get_args(env, info, 1, a, &callback) < 0) return NULL;
  napi_valuetype type;
  if (callback == NULL || napi_typeof(env, callback, &type) != napi_ok || type != napi_function) {
    napi_throw_type_error(env, NULL, "vsock addon: waitConnected needs a callback");
    return NULL;
  }
  uv_loop_t* loop;
  CHECK(napi_get_uv_event_loop(env, &loop));
  wait_job* job = calloc(1, sizeof(*job));
  if (job == NULL) return make_int(env, -ENOMEM);
  job->env = env;
  job->fd = (int)a[0];
  int r = uv_poll_init(loop, &job->poll, job->fd);
  if (r < 0) {  // nothing registered with the loop yet
    free(job);
    return make_int(env, r);
  }
  job->poll.data = job;
  napi_value name, handle;
  if (napi_create_string_utf8(env, "vsockWaitConnected", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_create_reference(env, callback, 1, &job->callback) != napi_ok ||
      napi_async_init(env, NULL, name, &job->context) != napi_ok ||
      napi_create_external(env, job, wait_collected, NULL, &handle) != napi_ok) {
    if (job->callback != NULL) napi_delete_reference(env, job->callback);
    if (job->context != NULL) napi_async_destroy(env, job->context);
    uv_close((uv_handle_t*)&job->poll, wait_abandoned);
    napi_throw_error(env, NULL, "vsock addon: cannot start waitConnected");
    return NULL;
  }
  r = uv_poll_start(&job->poll, UV_WRITABLE, wait_ready);
  if (r < 0) wait_finish(job, r);  // reported through the callback, like any other failure
  return handle;
}

static napi_value js_cancel_wait(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  size_t argc = 1;
  void* data = NULL;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
      napi_get_value_external(env, argv[0], &data) != napi_ok) {
    napi_throw_type_error(env, NULL, "vsock addon: cancelWait needs a waitConnected handle");
    return NULL;
  }
  wait_finish((wait_job*)data, -ECANCELED);
  return make_int(env, 0);
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"socket", NULL, js_socket, NULL, NULL, NULL, napi_enumerable, NULL},
      {"bind", NULL, js_bind, NULL, NULL, NULL, napi_enumerable, NULL},
      {"listen", NULL, js_listen, NULL, NULL, NULL, napi_enumerable, NULL},
      {"connect", NULL, js_connect, NULL, NULL, NULL, napi_enumerable, NULL},
      {"waitConnected", NULL, js_wait_connected, NULL, NULL, NULL, napi_enumerable, NULL},
      {"cancelWait", NULL, js_cancel_wait, NULL, NULL, NULL, napi_enumerable, NULL},
      {"getsockname", NULL, js_getsockname, NULL, NULL, NULL, napi_enumerable, NULL},
      {"getpeername", NULL, js_getpeername, NULL, NULL, NULL, napi_enumerable, NULL},
      {"family", NULL, js_family, NULL, NULL, NULL, napi_enumerable, NULL},
      {"localCid", NULL, js_local_cid, NULL, NULL, NULL, napi_enumerable, NULL},
      {"originalDst", NULL, js_original_dst, NULL, NULL, NULL, napi_enumerable, NULL},
      {"setConnectTimeout", NULL, js_set_connect_timeout, NULL, NULL, NULL, napi_enumerable, NULL},
      {"close", NULL, js_close, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  if (napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props) != napi_ok) return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
