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


#ifdef __linux__
// relay(fdA, fdB, callback) -> handle or -errno: moves bytes between two connected stream sockets
// without JavaScript, driven by uv_poll on Node's event loop (no thread). The sockets are dup()ed,
// so the caller's handles keep their fds; the relay closes only its own dups and pipes.
//
// Each direction moves small messages with read/write through a per-thread scratch buffer and
// switches to splice(2) through a pipe (created then) once reads get large (RELAY_BULK): bulk data
// then crosses the process without a copy into user space, while request/response traffic pays
// neither a pipe nor its fds. A socket that cannot splice (EINVAL) stays on read/write.
//
// Backpressure: a direction reads only when it holds nothing, and stops reading while the
// destination refuses bytes (EAGAIN); what it holds meanwhile is at most one pipe (RELAY_PIPE) or
// the unwritten part of one read (RELAY_CHUNK). Half-close: the EOF of one side becomes
// shutdown(SHUT_WR) on the other once everything read was written. The callback gets (result, side, aToB, bToA): result 0
// when both directions ended cleanly, -errno otherwise (side 0 = A, 1 = B: the socket whose system
// call failed), -ECANCELED after relayCancel.
#define RELAY_CHUNK 65536
// A read of at least RELAY_BULK bytes moves a direction to splice; RELAY_SMALL_RUN splice reads in
// a row of less than RELAY_SMALL move it back (hysteresis: a bulk stream has small reads too).
#define RELAY_BULK 16384
#define RELAY_PIPE (256 * 1024)
#define RELAY_READS_PER_WAKEUP 8
#define RELAY_SOCKET_BUFFER (2 * 1024 * 1024)
#define RELAY_SMALL 4096
#define RELAY_SMALL_RUN 16

static _Thread_local char relay_scratch[RELAY_CHUNK];

typedef struct {
  int src;  // dup of the socket read
  int dst;  // dup of the socket written
  int pipe_r;
  int pipe_w;
  size_t cap;      // pipe capacity
  int spliced;     // 1: bytes travel through the pipe; 0: read/write
  int no_splice;   // splice failed (EINVAL) or no pipe could be made: read/write only
  int small_run;   // splice reads in a row shorter than RELAY_SMALL
  int tuned;       // relay_tune ran
  char* held;      // read/write mode: bytes the destination did not take yet
  size_t held_off;
  size_t pending;  // bytes read and not written yet (in the pipe or in held)
  double bytes;    // bytes written to dst
  int eof;
  int shut;
} relay_dir;

typedef struct {
  uv_poll_t poll[2];  // [0] watches A, [1] watches B
  int fd[2];
  int events[2];      // what each poll currently waits for
  relay_dir dir[2];   // [0] A -> B, [1] B -> A
  napi_env env;
  napi_ref callback;
  napi_async_context context;
  uv_loop_t* loop;
  uint64_t last_ms;  // loop time of the last byte read
  int result;
  int side;
  int closing;
  int pending_closes;
  int closed;
  int unowned;
} relay_job;

static void relay_release(relay_job* job) {
  if (job->closed && job->unowned) free(job);
}

static void relay_collected(napi_env env, void* data, void* hint) {
  (void)env;
  (void)hint;
  relay_job* job = data;
  job->unowned = 1;
  relay_release(job);
}

static void relay_closed(uv_handle_t* handle) {
  relay_job* job = handle->data;
  if (--job->pending_closes > 0) return;
  napi_env env = job->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) == napi_ok) {
    napi_value callback, recv, argv[4];
    if (napi_get_reference_value(env, job->callback, &callback) == napi_ok &&
        napi_get_global(env, &recv) == napi_ok && (argv[0] = make_int(env, job->result)) != NULL &&
        (argv[1] = make_int(env, job->side)) != NULL &&
        napi_create_double(env, job->dir[0].bytes, &argv[2]) == napi_ok &&
        napi_create_double(env, job->dir[1].bytes, &argv[3]) == napi_ok) {
      if (napi_make_callback(env, job->context, recv, callback, 4, argv, NULL) == napi_pending_exception) {
        napi_value error;
        if (napi_get_and_clear_last_exception(env, &error) == napi_ok) napi_fatal_exception(env, error);
      }
    }
    napi_close_handle_scope(env, scope);
  }
  napi_delete_reference(env, job->callback);
  napi_async_destroy(env, job->context);
  job->closed = 1;
  relay_release(job);
}

static void relay_abandoned(uv_handle_t* handle) {
  relay_job* job = handle->data;
  if (--job->pending_closes == 0) free(job);
}

static void close_fd(int* fd) {
  if (*fd >= 0) close(*fd);
  *fd = -1;
}

static void relay_release_fds(relay_job* job) {
  for (int i = 0; i < 2; i++) {
    close_fd(&job->fd[i]);
    close_fd(&job->dir[i].pipe_r);
    close_fd(&job->dir[i].pipe_w);
    free(job->dir[i].held);
    job->dir[i].held = NULL;
  }
}

// Stops both polls (epoll forgets the dups before they are closed: the caller's fds share their
// open file descriptions), closes every fd the relay owns and reports once both polls are closed.
static void relay_finish(relay_job* job, int result, int side) {
  if (job->closing) return;
  job->closing = 1;
  job->result = result;
  job->side = side;
  uv_poll_stop(&job->poll[0]);
  uv_poll_stop(&job->poll[1]);
  relay_release_fds(job);
  job->pending_closes = 2;
  uv_close((uv_handle_t*)&job->poll[0], relay_closed);
  uv_close((uv_handle_t*)&job->poll[1], relay_closed);
}

// Writes what the direction holds. Returns 1 once empty, 0 when the destination is full, -errno.
static int relay_flush(relay_dir* d) {
  while (d->pending > 0) {
    ssize_t n = d->spliced
                    ? splice(d->pipe_r, NULL, d->dst, NULL, d->pending, SPLICE_F_MOVE | SPLICE_F_NONBLOCK)
                    : write(d->dst, d->held + d->held_off, d->pending);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) return 0;
      if (errno == EINVAL && d->spliced) {
        // The destination cannot take spliced bytes: take them out of the pipe, write them.
        char* held = malloc(d->pending);
        if (held == NULL) return -ENOMEM;
        ssize_t got = read(d->pipe_r, held, d->pending);
        if (got != (ssize_t)d->pending) {
          free(held);
          return -EIO;
        }
        d->held = held;
        d->held_off = 0;
        d->spliced = 0;
        d->no_splice = 1;
        continue;
      }
      return -errno;
    }
    d->pending -= (size_t)n;
    d->held_off += (size_t)n;
    d->bytes += (double)n;
  }
  free(d->held);
  d->held = NULL;
  d->held_off = 0;
  return 1;
}

// Deeper socket buffers for a bulk direction, so the processes of a chain of proxies can run ahead
// of one another instead of waking up for every few pages; best effort, the kernel caps each (TCP
// keeps its own autotuning). AF_UNIX: the writer's send buffer bounds what is in flight. AF_VSOCK:
// the reader's buffer is the credit its peer may send.
static void relay_tune(relay_dir* d) {
  struct sockaddr_storage addr;
  socklen_t len = sizeof(addr);
  if (getsockname(d->dst, (struct sockaddr*)&addr, &len) == 0 && addr.ss_family == AF_UNIX) {
    int size = RELAY_SOCKET_BUFFER;
    setsockopt(d->dst, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
  }
  len = sizeof(addr);
  if (getsockname(d->src, (struct sockaddr*)&addr, &len) == 0 && addr.ss_family == AF_VSOCK) {
    unsigned long long size = RELAY_SOCKET_BUFFER;
    setsockopt(d->src, AF_VSOCK, SO_VM_SOCKETS_BUFFER_MAX_SIZE, &size, sizeof(size));
    setsockopt(d->src, AF_VSOCK, SO_VM_SOCKETS_BUFFER_SIZE, &size, sizeof(size));
  }
}

// Bulk data: from now on through a pipe, made on first use. Stays on read/write if none can be made.
static void relay_use_splice(relay_dir* d) {
  if (d->no_splice) return;
  if (d->pipe_r < 0) {
    int p[2];
    if (pipe2(p, O_NONBLOCK | O_CLOEXEC) < 0) {
      d->no_splice = 1;
      return;
    }
    d->pipe_r = p[0];
    d->pipe_w = p[1];
    // Fewer, larger splices per byte; best effort (an unprivileged user may be at its pipe quota).
    fcntl(p[1], F_SETPIPE_SZ, RELAY_PIPE);
    int size = fcntl(p[1], F_GETPIPE_SZ);
    d->cap = size > 0 ? (size_t)size : RELAY_CHUNK;
  }
  d->spliced = 1;
  if (!d->tuned) {
    d->tuned = 1;
    relay_tune(d);
  }
}

// Moves what it can in one direction without blocking. Returns 0, or -errno with *side set.
static int relay_pump(relay_job* job, int index, int* side) {
  relay_dir* d = &job->dir[index];
  for (int reads = 0;; reads++) {
    if (d->pending > 0) {
      int r = relay_flush(d);
      if (r < 0) {
        *side = 1 - index;
        return r;
      }
      if (r == 0) return 0;  // woken again when the destination is writable
    }
    if (d->eof) {
      if (!d->shut) {
        d->shut = 1;
        // ENOTCONN: the peer is gone entirely; the other direction reports that if it matters.
        if (shutdown(d->dst, SHUT_WR) < 0 && errno != ENOTCONN) {
          *side = 1 - index;
          return -errno;
        }
      }
      return 0;
    }
    // Fairness: a source that never runs dry yields to the loop's other handles after a few reads;
    // it is still polled for reading (level-triggered), so the next loop iteration continues.
    if (reads >= RELAY_READS_PER_WAKEUP) return 0;
    size_t want = d->spliced ? d->cap : RELAY_CHUNK;
    ssize_t n = d->spliced ? splice(d->src, NULL, d->pipe_w, NULL, want, SPLICE_F_MOVE | SPLICE_F_NONBLOCK)
                           : read(d->src, relay_scratch, want);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) return 0;
      if (errno == EINVAL && d->spliced) {  // this source cannot splice; nothing was read
        d->spliced = 0;
        d->no_splice = 1;
        continue;
      }
      *side = index;
      return -errno;
    }
    if (n == 0) {
      d->eof = 1;
      continue;
    }
    job->last_ms = uv_now(job->loop);
    d->pending = (size_t)n;
    if (!d->spliced) {
      // Write straight from the scratch buffer; keep a copy only of what the destination refuses.
      size_t done = 0;
      while (done < (size_t)n) {
        ssize_t w = write(d->dst, relay_scratch + done, (size_t)n - done);
        if (w < 0) {
          if (errno == EINTR) continue;
          if (errno == EAGAIN) break;
          *side = 1 - index;
          return -errno;
        }
        done += (size_t)w;
        d->bytes += (double)w;
      }
      d->pending -= done;
      if (d->pending > 0) {
        d->held = malloc(d->pending);
        if (d->held == NULL) {
          *side = index;
          return -ENOMEM;
        }
        memcpy(d->held, relay_scratch + done, d->pending);
        d->held_off = 0;
        return 0;
      }
      if ((size_t)n >= RELAY_BULK) relay_use_splice(d);
    } else {
      int r = relay_flush(d);
      if (r < 0) {
        *side = 1 - index;
        return r;
      }
      d->small_run = (size_t)n < RELAY_SMALL ? d->small_run + 1 : 0;
      if (r == 0) return 0;  // the pipe drains first; a later read may change the mode
      if (d->small_run >= RELAY_SMALL_RUN) {
        d->spliced = 0;
        d->small_run = 0;
      }
    }
    // A short read drained the socket: skip the read that would only say EAGAIN (epoll is
    // level-triggered and reports the next bytes or the EOF).
    if ((size_t)n < want) return 0;
  }
}

static void relay_ready(uv_poll_t* poll, int status, int events);

// Points each poll at what its socket must report next; finishes the relay once both directions
// have ended.
static void relay_arm(relay_job* job) {
  if (job->dir[0].shut && job->dir[0].pending == 0 && job->dir[1].shut && job->dir[1].pending == 0) {
    relay_finish(job, 0, 0);
    return;
  }
  for (int i = 0; i < 2; i++) {
    // Socket i is the source of direction i and the destination of direction 1 - i.
    relay_dir* out = &job->dir[i];
    relay_dir* in = &job->dir[1 - i];
    int want = 0;
    if (!out->eof && out->pending == 0) want |= UV_READABLE;
    if (in->pending > 0) want |= UV_WRITABLE;
    if (want == job->events[i]) continue;
    job->events[i] = want;
    int r = want == 0 ? uv_poll_stop(&job->poll[i]) : uv_poll_start(&job->poll[i], want, relay_ready);
    if (r < 0) {
      relay_finish(job, r, i);
      return;
    }
  }
}

static void relay_ready(uv_poll_t* poll, int status, int events) {
  relay_job* job = poll->data;
  if (job->closing) return;
  int i = poll == &job->poll[0] ? 0 : 1;
  if (status < 0) {
    relay_finish(job, status, i);
    return;
  }
  int side = i;
  int r = 0;
  // Writable: the direction that writes to this socket; readable: the one that reads from it.
  if (events & UV_WRITABLE) r = relay_pump(job, 1 - i, &side);
  if (r == 0 && (events & UV_READABLE)) r = relay_pump(job, i, &side);
  if (r < 0) {
    relay_finish(job, r, side);
    return;
  }
  relay_arm(job);
}

static napi_value js_relay(napi_env env, napi_callback_info info) {
  uint32_t a[2];
  napi_value callback = NULL;
  if (get_args(env, info, 2, a, &callback) < 0) return NULL;
  napi_valuetype type;
  if (callback == NULL || napi_typeof(env, callback, &type) != napi_ok || type != napi_function) {
    napi_throw_type_error(env, NULL, "vsock addon: relay needs a callback");
    return NULL;
  }
  uv_loop_t* loop;
  CHECK(napi_get_uv_event_loop(env, &loop));
  relay_job* job = calloc(1, sizeof(*job));
  if (job == NULL) return make_int(env, -ENOMEM);
  job->env = env;
  job->loop = loop;
  for (int i = 0; i < 2; i++) job->fd[i] = job->dir[i].pipe_r = job->dir[i].pipe_w = -1;
  int err = 0;
  for (int i = 0; i < 2 && err == 0; i++) {
    job->fd[i] = fcntl((int)a[i], F_DUPFD_CLOEXEC, 0);
    if (job->fd[i] < 0) err = -errno;
  }
  int inited = 0;
  for (int i = 0; i < 2 && err == 0; i++) {
    err = uv_poll_init(loop, &job->poll[i], job->fd[i]);
    if (err == 0) {
      job->poll[i].data = job;
      inited++;
    }
  }
  job->dir[0].src = job->dir[1].dst = job->fd[0];
  job->dir[0].dst = job->dir[1].src = job->fd[1];
  napi_value name, handle;
  if (err == 0 &&
      (napi_create_string_utf8(env, "vsockRelay", NAPI_AUTO_LENGTH, &name) != napi_ok ||
       napi_create_reference(env, callback, 1, &job->callback) != napi_ok ||
       napi_async_init(env, NULL, name, &job->context) != napi_ok ||
       napi_create_external(env, job, relay_collected, NULL, &handle) != napi_ok)) {
    if (job->callback != NULL) napi_delete_reference(env, job->callback);
    if (job->context != NULL) napi_async_destroy(env, job->context);
    err = -ENOMEM;
  }
  if (err != 0) {
    relay_release_fds(job);
    if (inited == 0) {
      free(job);
    } else {
      // Initialised polls belong to the loop until closed: free the job once the last one is.
      job->closing = 1;
      job->pending_closes = inited;
      for (int i = 0; i < inited; i++) uv_close((uv_handle_t*)&job->poll[i], relay_abandoned);
    }
    return make_int(env, err);
  }
  job->last_ms = uv_now(loop);
  relay_arm(job);
  return handle;
}

static relay_job* relay_arg(napi_env env, napi_callback_info info, const char* what) {
  napi_value argv[1];
  size_t argc = 1;
  void* data = NULL;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
      napi_get_value_external(env, argv[0], &data) != napi_ok) {
    napi_throw_type_error(env, NULL, what);
    return NULL;
  }
  return data;
}

// [aToB, bToA, ms since a byte was last read] of a relay, live or finished.
static napi_value js_relay_stats(napi_env env, napi_callback_info info) {
  relay_job* job = relay_arg(env, info, "vsock addon: relayStats needs a relay handle");
  if (job == NULL) return NULL;
  napi_value out, value;
  CHECK(napi_create_array_with_length(env, 3, &out));
  CHECK(napi_create_double(env, job->dir[0].bytes, &value));
  CHECK(napi_set_element(env, out, 0, value));
  CHECK(napi_create_double(env, job->dir[1].bytes, &value));
  CHECK(napi_set_element(env, out, 1, value));
  CHECK(napi_create_double(env, (double)(uv_now(job->loop) - job->last_ms), &value));
  CHECK(napi_set_element(env, out, 2, value));
  return out;
}

// Ends a relay now: its fds are closed before this returns, the callback follows with -ECANCELED.
static napi_value js_relay_cancel(napi_env env, napi_callback_info info) {
  relay_job* job = relay_arg(env, info, "vsock addon: relayCancel needs a relay handle");
  if (job == NULL) return NULL;
  relay_finish(job, -ECANCELED, 0);
  return make_int(env, 0);
}
#endif

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
#ifdef __linux__
      {"relay", NULL, js_relay, NULL, NULL, NULL, napi_enumerable, NULL},
      {"relayStats", NULL, js_relay_stats, NULL, NULL, NULL, napi_enumerable, NULL},
      {"relayCancel", NULL, js_relay_cancel, NULL, NULL, NULL, napi_enumerable, NULL},
#endif
  };
  if (napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props) != napi_ok) return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
