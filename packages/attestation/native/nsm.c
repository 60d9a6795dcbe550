// The /dev/nsm system calls, nothing else: open, the raw ioctl, close. Every function returns a
// non-negative result or -errno (-EINVAL for bad arguments) and never throws; JavaScript builds
// the typed errors.
#include <errno.h>
#include <fcntl.h>
#include <node_api.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <unistd.h>

// include/uapi/linux/nsm.h (Linux >= 6.8), restated so older headers build too.
struct nsm_iovec {
  uint64_t addr;
  uint64_t len;
};
struct nsm_raw {
  struct nsm_iovec request;
  struct nsm_iovec response;
};
#define NSM_IOCTL_RAW _IOWR(0x0A, 0, struct nsm_raw)

static napi_value make_int(napi_env env, int64_t value) {
  napi_value out;
  if (napi_create_int64(env, (int64_t)value, &out) != napi_ok) return NULL;
  return out;
}

// A failed N-API call (wrong argument type or count) is -EINVAL to JavaScript, never undefined.
#define CHECK(call)                                                                                \
  do {                                                                                             \
    if ((call) != napi_ok) return make_int(env, -EINVAL);                                          \
  } while (0)

#define PATH_CAPACITY 4096

// open(path, O_RDWR | O_CLOEXEC): fd or -errno.
static napi_value nsm_open(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char path[PATH_CAPACITY];
  size_t len = 0;
  // measure first: napi would silently truncate a longer path, which could open another file
  CHECK(napi_get_value_string_utf8(env, argv[0], NULL, 0, &len));
  if (len >= sizeof(path)) return make_int(env, -ENAMETOOLONG);
  CHECK(napi_get_value_string_utf8(env, argv[0], path, sizeof(path), &len));
  int fd = open(path, O_RDWR | O_CLOEXEC);
  return make_int(env, fd < 0 ? -errno : fd);
}

static napi_value nsm_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd;
  CHECK(napi_get_value_int32(env, argv[0], &fd));
  return make_int(env, close(fd) < 0 ? -errno : 0);
}

typedef struct {
  int fd;
  struct nsm_raw raw;
  napi_ref request_ref;
  napi_ref response_ref;
  napi_ref callback_ref;
  napi_async_work work;
  int64_t result;
} call_t;

static void call_execute(napi_env env, void *data) {
  (void)env;
  call_t *c = data;
  int rc;
  do {
    rc = ioctl(c->fd, NSM_IOCTL_RAW, &c->raw);
  } while (rc < 0 && errno == EINTR);
  c->result = rc < 0 ? -errno : (int64_t)c->raw.response.len;
}

static void call_complete(napi_env env, napi_status status, void *data) {
  call_t *c = data;
  napi_value callback, global, argv[1];
  if (status != napi_ok) c->result = -ECANCELED;
  if (napi_get_reference_value(env, c->callback_ref, &callback) == napi_ok &&
      napi_get_global(env, &global) == napi_ok && (argv[0] = make_int(env, c->result)) != NULL) {
    napi_call_function(env, global, callback, 1, argv, NULL);
  }
  napi_delete_reference(env, c->request_ref);
  napi_delete_reference(env, c->response_ref);
  napi_delete_reference(env, c->callback_ref);
  napi_delete_async_work(env, c->work);
  free(c);
}

// call(fd, request, response, callback(result)): on the thread pool, the raw ioctl; result is the
// number of response bytes written or -errno. The buffers are kept alive until the callback.
static napi_value nsm_call(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd;
  CHECK(napi_get_value_int32(env, argv[0], &fd));
  void *req, *res;
  size_t req_len, res_len;
  CHECK(napi_get_buffer_info(env, argv[1], &req, &req_len));
  CHECK(napi_get_buffer_info(env, argv[2], &res, &res_len));
  napi_valuetype callback_type;
  CHECK(napi_typeof(env, argv[3], &callback_type));
  if (callback_type != napi_function) return make_int(env, -EINVAL);
  call_t *c = calloc(1, sizeof(call_t));
  if (!c) return make_int(env, -ENOMEM);
  c->fd = fd;
  c->raw.request.addr = (uint64_t)(uintptr_t)req;
  c->raw.request.len = req_len;
  c->raw.response.addr = (uint64_t)(uintptr_t)res;
  c->raw.response.len = res_len;
  napi_value name;
  if (napi_create_reference(env, argv[1], 1, &c->request_ref) != napi_ok ||
      napi_create_reference(env, argv[2], 1, &c->response_ref) != napi_ok ||
      napi_create_reference(env, argv[3], 1, &c->callback_ref) != napi_ok ||
      napi_create_string_utf8(env, "nsm_ioctl", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_create_async_work(env, NULL, name, call_execute, call_complete, c, &c->work) != napi_ok ||
      napi_queue_async_work(env, c->work) != napi_ok) {
    // undo what was created, or the buffers stay pinned forever
    if (c->work) napi_delete_async_work(env, c->work);
    if (c->request_ref) napi_delete_reference(env, c->request_ref);
    if (c->response_ref) napi_delete_reference(env, c->response_ref);
    if (c->callback_ref) napi_delete_reference(env, c->callback_ref);
    free(c);
    return make_int(env, -ENOMEM);
  }
  return make_int(env, 0);
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"open", NULL, nsm_open, NULL, NULL, NULL, napi_default, NULL},
      {"call", NULL, nsm_call, NULL, NULL, NULL, napi_default, NULL},
      {"close", NULL, nsm_close, NULL, NULL, NULL, napi_default, NULL},
  };
  if (napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props) != napi_ok) {
    napi_throw_error(env, NULL, "enclave_nsm: cannot define the addon's functions");
    return NULL;
  }
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
