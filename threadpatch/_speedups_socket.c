/* threadpatch._speedups, part 2: the waiting receive of a blocking socket.
 *
 * The receive of a blocking threadpatch socket whose data is (probably) not
 * there yet: the steps of the core's descriptor wait followed by the C recv,
 * with the GIL released once, for the poll(), instead of once per syscall
 * and twice re-taken.  Between two threads of one process ping-ponging over
 * a socket that halves the GIL hand-offs of each wake-up.
 *
 * The protocol with the core
 * --------------------------
 * This file never reads or writes a ThreadState's fields.  It waits through
 * two methods of threadpatch._core.ThreadState, which own the cancellation
 * check, the wake-up descriptor and the wait reason:
 *
 *   waiter = current_waiter()            the calling thread's ThreadState, or
 *                                        the hub's native waiter (not ours to
 *                                        poll for: we decline, Python waits)
 *   wake_fd = waiter.begin_fd_wait(reason)
 *                                        raises a pending cancellation; records
 *                                        `reason`; from now on a wake-up writes
 *                                        to wake_fd (an eventfd)
 *   without the GIL: poll(fd, wake_fd); read wake_fd if it fired
 *                    (at most 50 ms in the main thread: waiter.is_main)
 *   waiter.end_fd_wait()                 on every way out; raises a
 *                                        cancellation that came meanwhile
 *
 * then, the GIL held, if the socket is ready and still has the descriptor it
 * had before the wait, recv() from it (non-blocking: it only copies what is
 * there).  Another thread may have closed the socket while we waited, and
 * the number may name another file by now: the native call reads the
 * socket's descriptor again after its wait (-1: EBADF), and so does the
 * Python path that we then hand over to.  The GIL, held from that check to
 * the recv(), keeps another thread from closing the socket in between.
 *
 *   poll_recv(waiter, reason, sock, bufsize[, flags]) -> bytes | None
 *   poll_recv_into(waiter, reason, sock, buffer[, nbytes[, flags]]) -> int | None
 *
 * None means "nothing received, go on in Python": a wake-up without data, a
 * descriptor that changed, arguments the Python path must judge (it raises
 * the stdlib's errors for them), or a waiter we do not poll for.  EINTR runs
 * the signal handlers (a Ctrl-C in the main thread raises here, as the
 * native call would).
 *
 * The socket methods
 * ------------------
 * recv, recv_into and sendall of threadpatch.socket.socket, as method
 * descriptors made by socket_methods(cls, ...).  Each does only what the
 * common case needs and hands everything else, unchanged, to the Python
 * method it replaces (`fallback`), which is the reference behaviour:
 *
 *   recv / recv_into   a poll-first turn (self._tp_wait > 0, armed by this
 *                      thread, no timeout, no MSG_DONTWAIT): the
 *                      wait-and-receive above; else one non-blocking
 *                      receive (MSG_DONTWAIT: the descriptor of a blocking
 *                      socket is in blocking mode, as the stdlib's).  Data
 *                      or EOF -> return it; EAGAIN, EINTR or
 *                      anything unusual -> fallback(self, *args), which
 *                      waits (and arms the next receives to wait first).
 *   sendall            one send with MSG_DONTWAIT; all of it went -> None; a part
 *                      or nothing -> sendall_from(self, data, flags, sent);
 *                      anything unusual -> fallback(self, *args).
 *
 * A failing syscall raises OSError from errno, as the C socket does.
 */

#include "_speedups.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAIN_THREAD_SLICE_MS 50 /* MAIN_THREAD_SLICE in _core/_state.py */

/* Bound by socket_methods(). */
static PyTypeObject *state_type;  /* _core.ThreadState */
static PyObject *thread_local;    /* _core.thread_local: .state is the thread's ThreadState */
static PyObject *c_fileno;        /* _socket.socket.fileno */
static PyObject *recv_fallback, *recv_into_fallback, *sendall_fallback, *sendall_from;

/* Interned names, created by tp_socket_init(). */
static PyObject *str_begin_fd_wait, *str_end_fd_wait, *str_is_main, *str_recv;
static PyObject *str_tp_wait, *str_tp_timeout, *str_tp_wait_ident, *str_state;
/* The fields begin_fd_wait() sets, which the fast begin sets by name. */
static PyObject *str_interrupt, *str_wake_fd, *str_fd_waiting, *str_parked;
static PyObject *str_blocked_on, *str_blocked_since, *str_blocked_until;
static PyObject *infinity;

/* -- helpers ---------------------------------------------------------------- */

/* An int argument; -1 with an error set if it is not one (or out of range). */
static int
int_arg(PyObject *obj, int *out)
{
    long v = PyLong_AsLong(obj);

    if (v == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (v < INT_MIN || v > INT_MAX) {
        PyErr_SetString(PyExc_OverflowError, "int out of range");
        return -1;
    }
    *out = (int)v;
    return 0;
}

/* The socket's descriptor, or -1 (closed, not bound yet, or an error: cleared). */
static int
sock_fd(PyObject *self)
{
    PyObject *res;
    long fd;

    if (c_fileno == NULL) {
        return -1; /* socket_methods() not called yet */
    }
    res = PyObject_Vectorcall(c_fileno, &self, 1, NULL);
    if (res == NULL) {
        PyErr_Clear();
        return -1;
    }
    fd = PyLong_AsLong(res);
    Py_DECREF(res);
    if (fd == -1 && PyErr_Occurred()) {
        PyErr_Clear();
    }
    return fd < 0 || fd > INT_MAX ? -1 : (int)fd;
}

static int
call_end_fd_wait(PyObject *waiter)
{
    PyObject *res = PyObject_CallMethodNoArgs(waiter, str_end_fd_wait);

    if (res == NULL) {
        return -1;
    }
    Py_DECREF(res);
    return 0;
}

/* -- the wait, through the core's protocol ---------------------------------- */

/* The ThreadState fields the fast begin and end use, and their descriptors,
 * looked up by name on the class when it is bound (socket_methods()): a get
 * or set is then the descriptor's own, without the generic lookup.  Used
 * only on instances of exactly that class. */
enum { F_INTERRUPT, F_WAKE_FD, F_FD_WAITING, F_PARKED, F_BLOCKED_ON, F_BLOCKED_SINCE,
       F_BLOCKED_UNTIL, F_IS_MAIN, N_FIELDS };
static PyObject **field_names[N_FIELDS] = {
    &str_interrupt,     &str_wake_fd,       &str_fd_waiting, &str_parked,
    &str_blocked_on,    &str_blocked_since, &str_blocked_until, &str_is_main};
static PyObject *field_descrs[N_FIELDS];

/* Look the fields' descriptors up on `type`; 0, or -1 with an exception. */
static int
bind_fields(PyObject *type)
{
    PyObject *descr;
    int i;

    for (i = 0; i < N_FIELDS; i++) {
        descr = PyObject_GetAttr(type, *field_names[i]);
        if (descr == NULL) {
            return -1;
        }
        if (Py_TYPE(descr)->tp_descr_get == NULL || Py_TYPE(descr)->tp_descr_set == NULL) {
            PyErr_Format(PyExc_TypeError, "%R is not a data descriptor of %R", *field_names[i],
                         type);
            Py_DECREF(descr);
            return -1;
        }
        Py_XSETREF(field_descrs[i], descr);
    }
    return 0;
}

static PyObject *
field_get(PyObject *waiter, int field)
{
    PyObject *descr = field_descrs[field];

    return Py_TYPE(descr)->tp_descr_get(descr, waiter, (PyObject *)state_type);
}

/* 1 if the field is true, 0 if false, -1 with an exception. */
static int
field_true(PyObject *waiter, int field)
{
    PyObject *value = field_get(waiter, field);
    int r;

    if (value == NULL) {
        return -1;
    }
    r = PyObject_IsTrue(value);
    Py_DECREF(value);
    return r;
}

static int
set_fields(PyObject *waiter, const int *fields, PyObject *const *values, int n)
{
    PyObject *descr;
    int i;

    for (i = 0; i < n; i++) {
        descr = field_descrs[fields[i]];
        if (Py_TYPE(descr)->tp_descr_set(descr, waiter, values[i]) < 0) {
            return -1;
        }
    }
    return 0;
}

/* begin_fd_wait() when it has nothing to do but record (the common case),
 * without running Python: the thread's wake-up descriptor exists and no
 * interrupt is pending.  The same fields, set through the attribute protocol
 * (by name, never by layout).  1: begun, *wake_fd set; 0: call
 * begin_fd_wait() (it makes the descriptor, or raises the interrupt); -1:
 * an exception. */
static int
fast_begin(PyObject *waiter, PyObject *reason, long *wake_fd)
{
    static const int fields[5] = {F_BLOCKED_ON, F_BLOCKED_SINCE, F_BLOCKED_UNTIL, F_FD_WAITING,
                                  F_PARKED};
    PyObject *value, *now, *values[5];
    struct timespec ts;
    int r;

    value = field_get(waiter, F_WAKE_FD);
    if (value == NULL) {
        return -1;
    }
    *wake_fd = PyLong_Check(value) ? PyLong_AsLong(value) : -1;
    Py_DECREF(value);
    if (*wake_fd < 0 || *wake_fd > INT_MAX) {
        PyErr_Clear();
        return 0;
    }
    r = field_true(waiter, F_INTERRUPT);
    if (r != 0) {
        return r < 0 ? -1 : 0;
    }
    clock_gettime(CLOCK_MONOTONIC, &ts); /* time.monotonic()'s clock */
    now = PyFloat_FromDouble((double)ts.tv_sec + (double)ts.tv_nsec * 1e-9);
    if (now == NULL) {
        return -1;
    }
    values[0] = reason;
    values[1] = now;
    values[2] = infinity;
    values[3] = Py_True;
    values[4] = Py_True;
    r = set_fields(waiter, fields, values, 5);
    Py_DECREF(now);
    if (r == 0) {
        /* An interrupt that came before the flags were set wrote no wake-up. */
        r = field_true(waiter, F_INTERRUPT);
        if (r == 0) {
            return 1;
        }
    }
    /* Undo, and let begin_fd_wait() decide (it raises, or waits shielded). */
    if (call_end_fd_wait(waiter) < 0) {
        return -1;
    }
    return 0;
}

/* end_fd_wait(), the same way: clear what begin set, by name; only if an
 * interrupt came meanwhile call end_fd_wait() itself, which raises it.  The
 * fields are cleared before any Python code runs (a signal handler that
 * raises could not leave the wait recorded).  0, or -1 with an exception. */
static int
end_wait(PyObject *waiter)
{
    static const int fields[3] = {F_FD_WAITING, F_PARKED, F_BLOCKED_ON};
    PyObject *values[3] = {Py_False, Py_False, Py_None};
    int r;

    if (set_fields(waiter, fields, values, 3) < 0) {
        return -1;
    }
    r = field_true(waiter, F_INTERRUPT);
    if (r <= 0) {
        return r;
    }
    return call_end_fd_wait(waiter);
}

/* Wait as `waiter` until `fd` has one of `events` or the thread is woken.
 * 1: waited, *revents is fd's revents (0: only woken, or a main-thread slice
 * ended; -1: poll() failed with *err); 0: declined (not a ThreadState);
 * -1: an exception (a cancellation from begin/end_fd_wait). */
static int
fd_wait(PyObject *waiter, PyObject *reason, int fd, short events, int *revents, int *err)
{
    struct pollfd fds[2];
    PyObject *res;
    long wake_fd;
    int n, r, timeout_ms;
    uint64_t counter;

    if (state_type == NULL || Py_TYPE(waiter) != state_type || field_descrs[0] == NULL) {
        return 0;
    }
    res = field_get(waiter, F_IS_MAIN);
    if (res == NULL) {
        return -1;
    }
    timeout_ms = res == Py_True ? MAIN_THREAD_SLICE_MS : -1;
    Py_DECREF(res);
    r = fast_begin(waiter, reason, &wake_fd);
    if (r < 0) {
        return -1;
    }
    if (r == 0) {
        res = PyObject_CallMethodOneArg(waiter, str_begin_fd_wait, reason);
        if (res == NULL) {
            return -1;
        }
        wake_fd = PyLong_Check(res) ? PyLong_AsLong(res) : -1;
        Py_DECREF(res);
        if (wake_fd < 0 || wake_fd > INT_MAX) {
            PyErr_Clear();
            if (call_end_fd_wait(waiter) < 0) {
                return -1;
            }
            PyErr_SetString(PyExc_SystemError, "begin_fd_wait() returned no descriptor");
            return -1;
        }
    }
    fds[0].fd = fd;
    fds[0].events = events;
    fds[0].revents = 0;
    fds[1].fd = (int)wake_fd;
    fds[1].events = POLLIN;
    fds[1].revents = 0;
    Py_BEGIN_ALLOW_THREADS
    n = poll(fds, 2, timeout_ms);
    *err = n < 0 ? errno : 0;
    if (n > 0 && fds[1].revents) {
        /* A wake-up: drain the counter (non-blocking; EAGAIN: already drained). */
        if (read(fds[1].fd, &counter, sizeof(counter)) < 0) {
            counter = 0;
        }
    }
    Py_END_ALLOW_THREADS
    if (end_wait(waiter) < 0) {
        return -1;
    }
    *revents = n < 0 ? -1 : fds[0].revents;
    return 1;
}

/* Wait as `waiter` for socket `sock` (descriptor `fd`) and receive: 1 with *n
 * set (>= 0 received, or -1 with *err; EAGAIN: nothing received, and `fd`
 * must not be used again), 0 if it declined to wait, -1 with an exception. */
static int
wait_and_recv(PyObject *waiter, PyObject *reason, PyObject *sock, int fd, char *buf,
              Py_ssize_t len, int flags, Py_ssize_t *n, int *err)
{
    int revents, r = fd_wait(waiter, reason, fd, POLLIN, &revents, err);

    if (r <= 0) {
        return r;
    }
    *n = -1;
    if (revents <= 0) {
        if (revents == 0) {
            *err = EAGAIN; /* a wake-up */
        }
        return 1;
    }
    if (sock_fd(sock) != fd) {
        *err = EAGAIN; /* closed (or detached) while we waited */
        return 1;
    }
    /* Readable, hung up, failed or invalid: recv() says which. */
    *n = recv(fd, buf, (size_t)len, flags | MSG_DONTWAIT);
    *err = *n < 0 ? errno : 0;
    return 1;
}

/* The result for an error `err` of wait_and_recv: None for "go on in Python",
 * NULL with an exception otherwise. */
static PyObject *
recv_failed(int err)
{
    if (err == EAGAIN || err == EWOULDBLOCK) {
        Py_RETURN_NONE;
    }
    if (err == EINTR) {
        if (PyErr_CheckSignals() < 0) {
            return NULL;
        }
        Py_RETURN_NONE;
    }
    errno = err;
    return PyErr_SetFromErrno(PyExc_OSError);
}

/* Parse the optional trailing (nbytes, flags) / (flags) of a receive; -1 if odd. */
static int
parse_flags(PyObject *const *args, Py_ssize_t nargs, Py_ssize_t at, int *flags)
{
    *flags = 0;
    if (nargs > at && int_arg(args[at], flags) < 0) {
        PyErr_Clear();
        return -1;
    }
    return 0;
}

static PyObject *
poll_recv(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *result;
    Py_ssize_t bufsize, n;
    int fd, flags, err, r;

    if (nargs < 4 || nargs > 5) {
        PyErr_SetString(PyExc_TypeError, "poll_recv(waiter, reason, sock, bufsize[, flags])");
        return NULL;
    }
    bufsize = PyLong_AsSsize_t(args[3]);
    if ((bufsize == -1 && PyErr_Occurred()) || parse_flags(args, nargs, 4, &flags) < 0) {
        PyErr_Clear();
        Py_RETURN_NONE; /* the Python path raises the stdlib's error */
    }
    fd = sock_fd(args[2]);
    if (fd < 0 || bufsize <= 0 || (flags & MSG_DONTWAIT)) {
        Py_RETURN_NONE;
    }
    result = PyBytes_FromStringAndSize(NULL, bufsize);
    if (result == NULL) {
        return NULL;
    }
    r = wait_and_recv(args[0], args[1], args[2], fd, PyBytes_AS_STRING(result), bufsize, flags,
                      &n, &err);
    if (r <= 0 || n < 0) {
        Py_DECREF(result);
        return r < 0 ? NULL : r == 0 ? Py_NewRef(Py_None) : recv_failed(err);
    }
    if (n != bufsize && _PyBytes_Resize(&result, n) < 0) {
        return NULL;
    }
    return result;
}

static PyObject *
poll_recv_into(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer view;
    Py_ssize_t nbytes = 0, n;
    int fd, flags, err, r;

    if (nargs < 4 || nargs > 6) {
        PyErr_SetString(PyExc_TypeError,
                        "poll_recv_into(waiter, reason, sock, buffer[, nbytes[, flags]])");
        return NULL;
    }
    if (nargs >= 5) {
        nbytes = PyLong_AsSsize_t(args[4]);
    }
    if ((nbytes == -1 && PyErr_Occurred()) || parse_flags(args, nargs, 5, &flags) < 0
        || PyObject_GetBuffer(args[3], &view, PyBUF_WRITABLE) < 0) {
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    if (nbytes == 0) {
        nbytes = view.len;
    }
    fd = sock_fd(args[2]);
    if (fd < 0 || nbytes <= 0 || nbytes > view.len || (flags & MSG_DONTWAIT)) {
        PyBuffer_Release(&view);
        Py_RETURN_NONE;
    }
    r = wait_and_recv(args[0], args[1], args[2], fd, view.buf, nbytes, flags, &n, &err);
    PyBuffer_Release(&view);
    if (r <= 0 || n < 0) {
        return r < 0 ? NULL : r == 0 ? Py_NewRef(Py_None) : recv_failed(err);
    }
    return PyLong_FromSsize_t(n);
}

/* poll_fd(waiter, reason, fd, events) -> revents | None: one wait (the TLS
 * retry's); 0 when only woken (the caller looks at its object again), None
 * when declined (the caller waits in Python). */
static PyObject *
poll_fd(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    int fd, events, revents, err, r;

    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "poll_fd(waiter, reason, fd, events)");
        return NULL;
    }
    if (int_arg(args[2], &fd) < 0 || int_arg(args[3], &events) < 0 || fd < 0) {
        PyErr_Clear();
        Py_RETURN_NONE; /* the Python path says what is wrong */
    }
    r = fd_wait(args[0], args[1], fd, (short)events, &revents, &err);
    if (r <= 0) {
        return r < 0 ? NULL : Py_NewRef(Py_None);
    }
    if (revents < 0) {
        if (err == EINTR) {
            if (PyErr_CheckSignals() < 0) {
                return NULL;
            }
            return PyLong_FromLong(0);
        }
        errno = err;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    return PyLong_FromLong(revents);
}

/* -- the socket methods ----------------------------------------------------- */

/* fallback(self, *args, **kwargs) with the caller's own vectorcall arguments. */
static PyObject *
call_fallback(PyObject *fallback, PyObject *self, PyObject *const *args, Py_ssize_t nargs,
              PyObject *kwnames)
{
    PyObject *small[8], **all = small, *res;
    Py_ssize_t total = nargs + (kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames));

    if (total + 1 > 8) {
        all = PyMem_New(PyObject *, (size_t)total + 1);
        if (all == NULL) {
            return PyErr_NoMemory();
        }
    }
    all[0] = self;
    memcpy(all + 1, args, (size_t)total * sizeof(PyObject *));
    res = PyObject_Vectorcall(fallback, all, (size_t)nargs + 1, kwnames);
    if (all != small) {
        PyMem_Free(all);
    }
    return res;
}

/* Take one poll-first turn of `self`: 1 if this receive should wait first
 * (the counter is decremented), 0 if not, -1 on error. */
static int
poll_first_turn(PyObject *self)
{
    PyObject *wait, *timeout, *ident, *less;
    long n;
    int r;

    wait = PyObject_GetAttr(self, str_tp_wait);
    if (wait == NULL) {
        return -1;
    }
    n = PyLong_Check(wait) ? PyLong_AsLong(wait) : 0;
    Py_DECREF(wait);
    if (n == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (n <= 0) {
        return 0;
    }
    timeout = PyObject_GetAttr(self, str_tp_timeout);
    if (timeout == NULL) {
        return -1;
    }
    r = timeout == Py_None;
    Py_DECREF(timeout);
    if (!r) {
        return 0;
    }
    /* Armed by this thread (never by the hub's: see _socket_methods._retry). */
    ident = PyObject_GetAttr(self, str_tp_wait_ident);
    if (ident == NULL) {
        return -1;
    }
    r = PyLong_Check(ident) && PyLong_AsUnsignedLong(ident) == PyThread_get_thread_ident();
    Py_DECREF(ident);
    if (!r) {
        PyErr_Clear();
        return 0;
    }
    less = PyLong_FromLong(n - 1);
    if (less == NULL) {
        return -1;
    }
    r = PyObject_SetAttr(self, str_tp_wait, less);
    Py_DECREF(less);
    return r < 0 ? -1 : 1;
}

/* Receive into buf without waiting (MSG_DONTWAIT: a blocking socket's
 * descriptor is in blocking mode, as the stdlib's): bytes received, or -1
 * with *err. */
static Py_ssize_t
recv_now(int fd, char *buf, Py_ssize_t len, int flags, int *err)
{
    Py_ssize_t n;

    Py_BEGIN_ALLOW_THREADS
    n = recv(fd, buf, (size_t)len, flags | MSG_DONTWAIT);
    *err = n < 0 ? errno : 0;
    Py_END_ALLOW_THREADS
    return n;
}

static int
is_final(Py_ssize_t n, int err)
{
    return n >= 0 || (err != EAGAIN && err != EWOULDBLOCK && err != EINTR);
}

/* Wait first if it is this receive's poll-first turn, then receive without
 * waiting: 1 with *n set (-1 with *err: an error), 0 to fall back (nothing
 * received), -1 with an exception.  After a wait that received nothing, fall
 * back: the descriptor read before the wait may be stale by now. */
static int
receive(PyObject *self, int fd, char *buf, Py_ssize_t len, int flags, Py_ssize_t *n, int *err)
{
    PyObject *waiter, *reason;
    /* A 0-byte receive never waits, nor one the caller asked not to. */
    int r = len > 0 && !(flags & MSG_DONTWAIT) ? poll_first_turn(self) : 0;

    if (r < 0) {
        return -1;
    }
    if (r) {
        waiter = PyObject_GetAttr(thread_local, str_state);
        if (waiter == NULL) {
            if (!PyErr_ExceptionMatches(PyExc_AttributeError)) {
                return -1;
            }
            PyErr_Clear(); /* no state (yet): receive the ordinary way */
            goto try_now;
        }
        reason = PyTuple_Pack(2, str_recv, self);
        if (reason == NULL) {
            Py_DECREF(waiter);
            return -1;
        }
        r = wait_and_recv(waiter, reason, self, fd, buf, len, flags, n, err);
        Py_DECREF(reason);
        Py_DECREF(waiter);
        if (r < 0) {
            return -1;
        }
        if (r) {
            return is_final(*n, *err);
        }
    }
try_now:
    *n = recv_now(fd, buf, len, flags, err);
    return is_final(*n, *err);
}

static PyObject *
sock_recv(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *result;
    Py_ssize_t bufsize, n;
    int fd, flags = 0, err, r;

    if (nargs < 1 || nargs > 2 || !PyLong_CheckExact(args[0])
        || (nargs == 2 && !PyLong_CheckExact(args[1]))) {
        return call_fallback(recv_fallback, self, args, nargs, NULL);
    }
    bufsize = PyLong_AsSsize_t(args[0]);
    if ((bufsize == -1 && PyErr_Occurred()) || (nargs == 2 && int_arg(args[1], &flags) < 0)) {
        PyErr_Clear();
        return call_fallback(recv_fallback, self, args, nargs, NULL);
    }
    fd = sock_fd(self);
    if (fd < 0 || bufsize < 0) {
        return call_fallback(recv_fallback, self, args, nargs, NULL);
    }
    result = PyBytes_FromStringAndSize(NULL, bufsize);
    if (result == NULL) {
        return NULL;
    }
    r = receive(self, fd, PyBytes_AS_STRING(result), bufsize, flags, &n, &err);
    if (r <= 0 || n < 0) {
        Py_DECREF(result);
        if (r < 0) {
            return NULL;
        }
        if (r == 0) {
            if (err == EINTR && PyErr_CheckSignals() < 0) {
                return NULL;
            }
            return call_fallback(recv_fallback, self, args, nargs, NULL);
        }
        errno = err;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    if (n != bufsize && _PyBytes_Resize(&result, n) < 0) {
        return NULL;
    }
    return result;
}

static PyObject *
sock_recv_into(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    Py_buffer view;
    Py_ssize_t nbytes = 0, n;
    int fd, flags = 0, err, r;

    if (kwnames != NULL || nargs < 1 || nargs > 3 || (nargs >= 2 && !PyLong_CheckExact(args[1]))
        || (nargs == 3 && !PyLong_CheckExact(args[2]))) {
        return call_fallback(recv_into_fallback, self, args, nargs, kwnames);
    }
    if (nargs >= 2) {
        nbytes = PyLong_AsSsize_t(args[1]);
    }
    if ((nbytes == -1 && PyErr_Occurred()) || (nargs == 3 && int_arg(args[2], &flags) < 0)
        || PyObject_GetBuffer(args[0], &view, PyBUF_WRITABLE) < 0) {
        PyErr_Clear();
        return call_fallback(recv_into_fallback, self, args, nargs, kwnames);
    }
    if (nbytes == 0) {
        nbytes = view.len;
    }
    fd = sock_fd(self);
    if (fd < 0 || nbytes < 0 || nbytes > view.len) {
        PyBuffer_Release(&view);
        return call_fallback(recv_into_fallback, self, args, nargs, kwnames);
    }
    r = receive(self, fd, view.buf, nbytes, flags, &n, &err);
    PyBuffer_Release(&view);
    if (r < 0) {
        return NULL;
    }
    if (r == 0) {
        if (err == EINTR && PyErr_CheckSignals() < 0) {
            return NULL;
        }
        return call_fallback(recv_into_fallback, self, args, nargs, kwnames);
    }
    if (n < 0) {
        errno = err;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    return PyLong_FromSsize_t(n);
}

static PyObject *
sock_sendall(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer view;
    Py_ssize_t n, len;
    PyObject *sent, *flags_obj, *call[4], *res;
    int fd, flags = 0, err;

    if (nargs < 1 || nargs > 2 || (nargs == 2 && !PyLong_CheckExact(args[1]))) {
        return call_fallback(sendall_fallback, self, args, nargs, NULL);
    }
    if ((nargs == 2 && int_arg(args[1], &flags) < 0)
        || PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0) {
        PyErr_Clear();
        return call_fallback(sendall_fallback, self, args, nargs, NULL);
    }
    fd = sock_fd(self);
    if (fd < 0) {
        PyBuffer_Release(&view);
        return call_fallback(sendall_fallback, self, args, nargs, NULL);
    }
    len = view.len;
    Py_BEGIN_ALLOW_THREADS
    n = send(fd, view.buf, (size_t)len, flags | MSG_DONTWAIT); /* never blocks */
    err = n < 0 ? errno : 0;
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    if (n == len) {
        Py_RETURN_NONE;
    }
    if (n < 0) {
        if (err == EINTR) {
            if (PyErr_CheckSignals() < 0) {
                return NULL;
            }
        }
        else if (err != EAGAIN && err != EWOULDBLOCK) {
            errno = err;
            return PyErr_SetFromErrno(PyExc_OSError);
        }
        n = 0;
    }
    sent = PyLong_FromSsize_t(n);
    flags_obj = nargs == 2 ? Py_NewRef(args[1]) : PyLong_FromLong(0);
    if (sent == NULL || flags_obj == NULL) {
        Py_XDECREF(sent);
        Py_XDECREF(flags_obj);
        return NULL;
    }
    call[0] = self;
    call[1] = args[0];
    call[2] = flags_obj;
    call[3] = sent;
    res = PyObject_Vectorcall(sendall_from, call, 4, NULL);
    Py_DECREF(sent);
    Py_DECREF(flags_obj);
    return res;
}

static PyMethodDef socket_method_defs[] = {
    {"recv", (PyCFunction)(void (*)(void))sock_recv, METH_FASTCALL,
     "recv($self, bufsize, flags=0, /)\n--\n\nReceive up to bufsize bytes (cancellable)."},
    {"recv_into", (PyCFunction)(void (*)(void))sock_recv_into, METH_FASTCALL | METH_KEYWORDS,
     "recv_into($self, /, buffer, nbytes=0, flags=0)\n--\n\n"
     "Receive into buffer; the number of bytes received (cancellable)."},
    {"sendall", (PyCFunction)(void (*)(void))sock_sendall, METH_FASTCALL,
     "sendall($self, data, flags=0, /)\n--\n\n"
     "Send all of data (cancellable); on an exception part-way, exc.bytes_sent says how much "
     "went."},
};

#define N_BOUND 7

/* socket_methods(cls, fileno, ThreadState, thread_local,
 *                recv, recv_into, sendall, sendall_from)
 * -> (recv, recv_into, sendall) method descriptors for cls. */
static PyObject *
socket_methods(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject **slots[N_BOUND] = {&c_fileno,         (PyObject **)&state_type, &thread_local,
                                 &recv_fallback,    &recv_into_fallback,      &sendall_fallback,
                                 &sendall_from};
    PyObject *descrs[3];
    int i;

    if (nargs != N_BOUND + 1 || !PyType_Check(args[0]) || !PyType_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError,
                        "socket_methods(cls, fileno, ThreadState, thread_local, "
                        "recv, recv_into, sendall, sendall_from)");
        return NULL;
    }
    for (i = 0; i < N_BOUND; i++) {
        Py_XSETREF(*slots[i], Py_NewRef(args[i + 1]));
    }
    if (bind_fields(args[2]) < 0) {
        Py_CLEAR(state_type);  /* no fast waits without the fields */
        return NULL;
    }
    for (i = 0; i < 3; i++) {
        descrs[i] = PyDescr_NewMethod((PyTypeObject *)args[0], &socket_method_defs[i]);
        if (descrs[i] == NULL) {
            while (i--) {
                Py_DECREF(descrs[i]);
            }
            return NULL;
        }
    }
    return Py_BuildValue("(NNN)", descrs[0], descrs[1], descrs[2]);
}

static PyMethodDef socket_functions[] = {
    {"poll_recv", (PyCFunction)(void (*)(void))poll_recv, METH_FASTCALL,
     "poll_recv(waiter, reason, sock, bufsize[, flags])\n"
     "Wait for a socket (or a wake-up) and receive: bytes, or None to go on in Python."},
    {"poll_recv_into", (PyCFunction)(void (*)(void))poll_recv_into, METH_FASTCALL,
     "poll_recv_into(waiter, reason, sock, buffer[, nbytes[, flags]])\n"
     "Wait for a socket (or a wake-up) and receive into a buffer: int, or None."},
    {"poll_fd", (PyCFunction)(void (*)(void))poll_fd, METH_FASTCALL,
     "poll_fd(waiter, reason, fd, events)\n"
     "Wait for a descriptor (or a wake-up): its revents, 0 if only woken, None to wait in Python."},
    {"socket_methods", (PyCFunction)(void (*)(void))socket_methods, METH_FASTCALL,
     "recv, recv_into and sendall of threadpatch's socket class, in C."},
    {NULL, NULL, 0, NULL},
};

int
tp_socket_init(PyObject *module)
{
    struct {
        PyObject **slot;
        const char *text;
    } names[] = {
        {&str_begin_fd_wait, "begin_fd_wait"},
        {&str_end_fd_wait, "end_fd_wait"},
        {&str_is_main, "is_main"},
        {&str_recv, "recv"},
        {&str_tp_wait, "_tp_wait"},
        {&str_tp_timeout, "_tp_timeout"},
        {&str_tp_wait_ident, "_tp_wait_ident"},
        {&str_state, "state"},
        {&str_interrupt, "interrupt"},
        {&str_wake_fd, "_wake_fd"},
        {&str_fd_waiting, "_fd_waiting"},
        {&str_parked, "parked"},
        {&str_blocked_on, "blocked_on"},
        {&str_blocked_since, "blocked_since"},
        {&str_blocked_until, "blocked_until"},
    };
    size_t i;

    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (tp_intern(names[i].slot, names[i].text) < 0) {
            return -1;
        }
    }
    if (infinity == NULL) {
        infinity = PyFloat_FromDouble(Py_HUGE_VAL);
        if (infinity == NULL) {
            return -1;
        }
    }
    return PyModule_AddFunctions(module, socket_functions);
}
