/* threadpatch._speedups, part 4: the fast path of patched os.read / os.write.
 *
 * threadpatch/_os.py is the reference (its docstring is the specification):
 * each call first makes one preadv2/pwritev2 with RWF_NOWAIT at the current
 * position, which returns at once when data (or room) is there.  These
 * functions do only that first step in C, with the GIL released around the
 * syscall, and hand every other case to the Python code, so that the
 * behaviour is defined in one place:
 *
 *   fd_read(fd, length)      data -> bytes (shrunk as os.read shrinks them);
 *                            0 -> b"" (EOF); a short read of a regular file
 *                            or block device (RWF_NOWAIT stops at a page not
 *                            in the cache) is completed by a plain read(),
 *                            as _os._read_done does
 *   fd_readinto(fd, buffer)  the same into a writable contiguous buffer
 *   fd_write(fd, data)       all of it went -> the count
 *
 *   anything else            the Python reference, unchanged:
 *     arguments that are not exact ints or plain contiguous buffers, a
 *     length <= 0, a negative fd, an empty write -> read / readinto / write
 *     (which give the stdlib's results and errors);
 *     a failed first try (EAGAIN, EOPNOTSUPP, EINVAL or any other errno)
 *     -> _read_slow(fd, length, errno) / _readinto_slow(fd, buffer, errno)
 *        / _write_slow(fd, data, 0, errno);
 *     a partial write -> _write_slow(fd, data, written, 0).
 *
 * EINTR runs the signal handlers and tries again, as os.read does (PEP 475).
 * The Python functions are bound by fd_io_bind(), which threadpatch/_os.py
 * calls at import; a call before that imports threadpatch._os.
 */

#include "_speedups.h"

#include <errno.h>
#include <limits.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#ifdef RWF_NOWAIT

/* Bound by fd_io_bind(): the Python reference and its slow paths. */
static PyObject *py_read, *py_readinto, *py_write;
static PyObject *read_slow, *readinto_slow, *write_slow;

static int
ensure_bound(void)
{
    if (py_read == NULL) {
        PyObject *mod = PyImport_ImportModule("threadpatch._os"); /* binds */

        if (mod == NULL) {
            return -1;
        }
        Py_DECREF(mod);
        if (py_read == NULL) {
            PyErr_SetString(PyExc_RuntimeError,
                            "threadpatch._speedups.fd_io_bind() was not called");
            return -1;
        }
    }
    return 0;
}

/* An exact int argument that fits in an int (a descriptor); 0, or -1 (no error set). */
static int
exact_fd(PyObject *obj, int *out)
{
    long v;

    if (!PyLong_CheckExact(obj)) {
        return -1;
    }
    v = PyLong_AsLong(obj);
    if (v == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        return -1;
    }
    if (v < 0 || v > INT_MAX) {
        return -1;
    }
    *out = (int)v;
    return 0;
}

/* Call a Python function with the C function's own arguments. */
static PyObject *
call_python(PyObject *func, PyObject *const *args, Py_ssize_t nargs)
{
    return PyObject_Vectorcall(func, args, (size_t)nargs, NULL);
}

/* func(a, b, err) or func(a, b, written, err): the slow path after the first try. */
static PyObject *
call_slow(PyObject *func, PyObject *a, PyObject *b, Py_ssize_t written, int err, int with_count)
{
    PyObject *count = NULL, *code, *res;

    code = PyLong_FromLong(err);
    if (code == NULL) {
        return NULL;
    }
    if (with_count) {
        count = PyLong_FromSsize_t(written);
        if (count == NULL) {
            Py_DECREF(code);
            return NULL;
        }
        PyObject *args[4] = {a, b, count, code};
        res = PyObject_Vectorcall(func, args, 4, NULL);
        Py_DECREF(count);
    }
    else {
        PyObject *args[3] = {a, b, code};
        res = PyObject_Vectorcall(func, args, 3, NULL);
    }
    Py_DECREF(code);
    return res;
}

/* One RWF_NOWAIT preadv2 / pwritev2 at the current position, the GIL released;
 * EINTR runs the signal handlers and retries.  The count, or -1 with *err set
 * (and -2 if a signal handler raised). */
static Py_ssize_t
nowait_io(int fd, void *buf, Py_ssize_t len, int writing, int *err)
{
    struct iovec iov = {buf, (size_t)len};
    Py_ssize_t n;
    int saved;

    for (;;) {
        Py_BEGIN_ALLOW_THREADS
        n = writing ? pwritev2(fd, &iov, 1, -1, RWF_NOWAIT) : preadv2(fd, &iov, 1, -1, RWF_NOWAIT);
        saved = errno;
        Py_END_ALLOW_THREADS
        if (n >= 0) {
            return n;
        }
        if (saved != EINTR) {
            *err = saved;
            return -1;
        }
        if (PyErr_CheckSignals() < 0) {
            return -2;
        }
    }
}

/* After a short read of `got` bytes: if fd is a regular file or block device,
 * read the rest (len - got more, one plain read) into buf + got.  The total,
 * or -1 with an OSError (from fstat or read, as the Python raises). */
static Py_ssize_t
complete_short_read(int fd, char *buf, Py_ssize_t got, Py_ssize_t len)
{
    struct stat st;
    Py_ssize_t n;
    int r, saved;

    Py_BEGIN_ALLOW_THREADS
    r = fstat(fd, &st);
    saved = errno;
    Py_END_ALLOW_THREADS
    if (r < 0) {
        errno = saved;
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
        return got;
    }
    for (;;) {
        Py_BEGIN_ALLOW_THREADS
        n = read(fd, buf + got, (size_t)(len - got));
        saved = errno;
        Py_END_ALLOW_THREADS
        if (n >= 0) {
            return got + n;
        }
        if (saved != EINTR) {
            errno = saved;
            PyErr_SetFromErrno(PyExc_OSError);
            return -1;
        }
        if (PyErr_CheckSignals() < 0) {
            return -1;
        }
    }
}

/* -- fd_read ---------------------------------------------------------------- */

static PyObject *
fd_read(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *result;
    Py_ssize_t length, got;
    int fd, err = 0;

    if (ensure_bound() < 0) {
        return NULL;
    }
    if (nargs != 2 || exact_fd(args[0], &fd) < 0 || !PyLong_CheckExact(args[1])) {
        return call_python(py_read, args, nargs);
    }
    length = PyLong_AsSsize_t(args[1]);
    if (length <= 0) {
        PyErr_Clear(); /* an overflow: the reference judges it */
        return call_python(py_read, args, nargs);
    }
    result = PyBytes_FromStringAndSize(NULL, length);
    if (result == NULL) {
        return NULL;
    }
    got = nowait_io(fd, PyBytes_AS_STRING(result), length, 0, &err);
    if (got == length) {
        return result;
    }
    if (got < 0) {
        Py_DECREF(result);
        if (got == -2) {
            return NULL;
        }
        return call_slow(read_slow, args[0], args[1], 0, err, 0);
    }
    if (got > 0) {
        got = complete_short_read(fd, PyBytes_AS_STRING(result), got, length);
        if (got < 0) {
            Py_DECREF(result);
            return NULL;
        }
    }
    if (got != length && _PyBytes_Resize(&result, got) < 0) {
        return NULL;
    }
    return result;
}

/* -- fd_readinto ------------------------------------------------------------ */

static PyObject *
fd_readinto(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer view;
    PyObject *result;
    Py_ssize_t got;
    int fd, err = 0;

    if (ensure_bound() < 0) {
        return NULL;
    }
    if (nargs != 2 || exact_fd(args[0], &fd) < 0) {
        return call_python(py_readinto, args, nargs);
    }
    if (PyObject_GetBuffer(args[1], &view, PyBUF_WRITABLE) < 0) {
        PyErr_Clear(); /* read-only, not contiguous, no buffer: the reference's error */
        return call_python(py_readinto, args, nargs);
    }
    if (view.len == 0) {
        PyBuffer_Release(&view);
        return PyLong_FromLong(0);
    }
    got = nowait_io(fd, view.buf, view.len, 0, &err);
    if (got > 0 && got < view.len) {
        got = complete_short_read(fd, view.buf, got, view.len);
    }
    PyBuffer_Release(&view);
    if (got >= 0) {
        return PyLong_FromSsize_t(got);
    }
    if (got == -2 || PyErr_Occurred()) {
        return NULL;
    }
    result = call_slow(readinto_slow, args[0], args[1], 0, err, 0);
    return result;
}

/* -- fd_write --------------------------------------------------------------- */

static PyObject *
fd_write(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer view;
    PyObject *result;
    Py_ssize_t n;
    int fd, err = 0;

    if (ensure_bound() < 0) {
        return NULL;
    }
    if (nargs != 2 || exact_fd(args[0], &fd) < 0) {
        return call_python(py_write, args, nargs);
    }
    if (PyObject_GetBuffer(args[1], &view, PyBUF_SIMPLE) < 0) {
        PyErr_Clear(); /* no buffer, not contiguous: the reference's error */
        return call_python(py_write, args, nargs);
    }
    if (view.len == 0) {
        PyBuffer_Release(&view);
        return call_python(py_write, args, nargs);
    }
    n = nowait_io(fd, view.buf, view.len, 1, &err);
    if (n == view.len) {
        PyBuffer_Release(&view);
        return PyLong_FromSsize_t(n);
    }
    if (n == -2) {
        PyBuffer_Release(&view);
        return NULL;
    }
    /* The buffer stays exported while the Python loop writes the rest, so
     * that it cannot be resized between the two. */
    result = call_slow(write_slow, args[0], args[1], n < 0 ? 0 : n, n < 0 ? err : 0, 1);
    PyBuffer_Release(&view);
    return result;
}

/* -- binding ---------------------------------------------------------------- */

static PyObject *
fd_io_bind(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 6) {
        PyErr_SetString(PyExc_TypeError,
                        "fd_io_bind(read, readinto, write, read_slow, readinto_slow, write_slow)");
        return NULL;
    }
    Py_XSETREF(py_read, Py_NewRef(args[0]));
    Py_XSETREF(py_readinto, Py_NewRef(args[1]));
    Py_XSETREF(py_write, Py_NewRef(args[2]));
    Py_XSETREF(read_slow, Py_NewRef(args[3]));
    Py_XSETREF(readinto_slow, Py_NewRef(args[4]));
    Py_XSETREF(write_slow, Py_NewRef(args[5]));
    Py_RETURN_NONE;
}

static PyMethodDef fdio_functions[] = {
    {"fd_read", (PyCFunction)(void (*)(void))fd_read, METH_FASTCALL,
     "fd_read(fd, length, /)\n--\n\n"
     "os.read(fd, length), a cancellation point while fd has nothing to read (threadpatch._os)."},
    {"fd_readinto", (PyCFunction)(void (*)(void))fd_readinto, METH_FASTCALL,
     "fd_readinto(fd, buffer, /)\n--\n\n"
     "os.readv(fd, [buffer]) with os.read's waits: the count read (threadpatch._os)."},
    {"fd_write", (PyCFunction)(void (*)(void))fd_write, METH_FASTCALL,
     "fd_write(fd, data, /)\n--\n\n"
     "os.write(fd, data), a cancellation point while fd has no room (threadpatch._os)."},
    {"fd_io_bind", (PyCFunction)(void (*)(void))fd_io_bind, METH_FASTCALL,
     "fd_io_bind(read, readinto, write, read_slow, readinto_slow, write_slow, /)\n--\n\n"
     "Bind the pure-Python functions of threadpatch._os the fast paths hand over to."},
    {NULL, NULL, 0, NULL},
};

int
tp_fdio_init(PyObject *module)
{
    return PyModule_AddFunctions(module, fdio_functions);
}

#else /* no RWF_NOWAIT in the headers: threadpatch._os stays pure Python */

int
tp_fdio_init(PyObject *Py_UNUSED(module))
{
    return 0;
}

#endif
