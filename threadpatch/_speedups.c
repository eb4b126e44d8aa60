/* threadpatch._speedups: the uncontended paths of Lock and RLock, and the
 * poll-then-receive of a blocking socket, in C.
 *
 * Optional accelerator.  threadpatch/_sync.py keeps the pure-Python
 * reference implementation and uses it when this module is missing (or when
 * THREADPATCH_PURE_PYTHON=1 is set); the behaviour is the same.
 *
 * How it works
 * ------------
 * LockCore and RLockCore are subclassable base types.  Each holds a
 * PyThread_type_lock (the mutual exclusion, as in CPython's own lock) and a
 * reference to the ParkingLot's waiter FIFO (the `_waiters` member, set by
 * the Python subclass).  This module never blocks:
 *
 *   acquire()   try the native lock without waiting -> True
 *               busy and blocking -> self._acquire_blocking()   (Python: park)
 *               unusual arguments -> self._acquire_slow(*args, **kwargs)
 *                                    (Python: validates exactly like the
 *                                    native lock, then waits)
 *   release()   release the native lock; only if the FIFO is non-empty
 *               -> self._wake()                                 (Python: unpark one)
 *
 * So an uncontended acquire/release pair costs two C calls, like the native
 * lock, and waiting keeps every cancellation invariant of the Python code.
 * Owner, count and the `locked` flag are updated with the GIL held, which is
 * exactly what CPython's lock and RLock rely on (3.11-3.13, GIL builds).
 *
 * poll_recv() and poll_recv_into() are the waiting receive of a blocking
 * threadpatch socket (see the "socket waits" section below).
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <poll.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#if PY_VERSION_HEX < 0x030C0000
#include <structmember.h>
#define Py_T_OBJECT_EX T_OBJECT_EX
#endif

/* Interned names, created at module initialisation. */
static PyObject *str_acquire_slow;
static PyObject *str_acquire_blocking;
static PyObject *str_acquire_restore_slow;
static PyObject *str_wake;
static PyObject *str_blocking;
static PyObject *str_timeout;

/* -- shared helpers ----------------------------------------------------- */

/* 1 if the waiter FIFO is non-empty, 0 if empty or unset, -1 on error. */
static int
has_waiters(PyObject *waiters)
{
    Py_ssize_t n;

    if (waiters == NULL) {
        return 0;
    }
    n = PyObject_Length(waiters);
    if (n < 0) {
        return -1;
    }
    return n > 0;
}

/* Call self.<name>() if someone waits; 0 on success, -1 on error. */
static int
wake_if_waiting(PyObject *self, PyObject *waiters)
{
    PyObject *res;
    int r = has_waiters(waiters);

    if (r <= 0) {
        return r;
    }
    res = PyObject_CallMethodNoArgs(self, str_wake);
    if (res == NULL) {
        return -1;
    }
    Py_DECREF(res);
    return 0;
}

static int
name_is(PyObject *name, PyObject *interned)
{
    return name == interned || PyUnicode_Compare(name, interned) == 0;
}

/* True if `obj` is exactly the int -1 or the float -1.0 (an unset timeout). */
static int
is_unset_timeout(PyObject *obj)
{
    if (PyLong_CheckExact(obj)) {
        int overflow = 0;
        long v = PyLong_AsLongAndOverflow(obj, &overflow);
        return v == -1 && !overflow;
    }
    if (PyFloat_CheckExact(obj)) {
        return PyFloat_AS_DOUBLE(obj) == -1.0;
    }
    return 0;
}

/* Parse acquire(blocking=True, timeout=-1) for the fast path.
 *
 * Returns 1 when the call has the common shape (timeout absent or -1);
 * *blocking is then set.  Returns 0 when anything else was passed: the
 * caller hands the call, unchanged, to the Python slow path, which validates
 * it with a native lock so that every error and message is the native one.
 * Returns -1 if bool(blocking) raised.
 */
static int
parse_acquire(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames, int *blocking)
{
    PyObject *blocking_obj = NULL;
    PyObject *timeout_obj = NULL;
    Py_ssize_t i, nkw;
    int b;

    if (nargs > 2) {
        return 0;
    }
    if (nargs >= 1) {
        blocking_obj = args[0];
    }
    if (nargs == 2) {
        timeout_obj = args[1];
    }
    if (kwnames != NULL) {
        nkw = PyTuple_GET_SIZE(kwnames);
        for (i = 0; i < nkw; i++) {
            PyObject *name = PyTuple_GET_ITEM(kwnames, i);
            if (name_is(name, str_blocking) && blocking_obj == NULL) {
                blocking_obj = args[nargs + i];
            }
            else if (name_is(name, str_timeout) && timeout_obj == NULL) {
                timeout_obj = args[nargs + i];
            }
            else {
                return 0;
            }
        }
    }
    if (timeout_obj != NULL && !is_unset_timeout(timeout_obj)) {
        return 0;
    }
    if (blocking_obj == NULL) {
        *blocking = 1;
        return 1;
    }
    b = PyObject_IsTrue(blocking_obj);
    if (b < 0) {
        return -1;
    }
    *blocking = b;
    return 1;
}

/* self.<name>(*args, **kwargs) with the caller's own vectorcall arguments. */
static PyObject *
forward_call(PyObject *self, PyObject *name, PyObject *const *args, Py_ssize_t nargs,
             PyObject *kwnames)
{
    PyObject *res;
    PyObject *meth = PyObject_GetAttr(self, name);

    if (meth == NULL) {
        return NULL;
    }
    res = PyObject_Vectorcall(meth, args, (size_t)nargs, kwnames);
    Py_DECREF(meth);
    return res;
}

/* -- LockCore ------------------------------------------------------------ */

typedef struct {
    PyObject_HEAD
    PyThread_type_lock lock;
    char locked;
    PyObject *waiters;
    PyObject *weakreflist;
} LockCore;

static PyObject *
lockcore_new(PyTypeObject *type, PyObject *Py_UNUSED(args), PyObject *Py_UNUSED(kwds))
{
    LockCore *self = (LockCore *)type->tp_alloc(type, 0);

    if (self == NULL) {
        return NULL;
    }
    self->lock = PyThread_allocate_lock();
    if (self->lock == NULL) {
        Py_DECREF(self);
        PyErr_SetString(PyExc_MemoryError, "can't allocate lock");
        return NULL;
    }
    return (PyObject *)self;
}

static int
lockcore_traverse(LockCore *self, visitproc visit, void *arg)
{
    Py_VISIT(self->waiters);
    return 0;
}

static int
lockcore_clear(LockCore *self)
{
    Py_CLEAR(self->waiters);
    return 0;
}

static void
lockcore_dealloc(LockCore *self)
{
    PyObject_GC_UnTrack(self);
    if (self->weakreflist != NULL) {
        PyObject_ClearWeakRefs((PyObject *)self);
    }
    Py_CLEAR(self->waiters);
    if (self->lock != NULL) {
        /* Unlock first: some platforms cannot free a held lock. */
        if (self->locked) {
            PyThread_release_lock(self->lock);
        }
        PyThread_free_lock(self->lock);
    }
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static inline int
lockcore_try(LockCore *self)
{
    if (PyThread_acquire_lock(self->lock, NOWAIT_LOCK)) {
        self->locked = 1;
        return 1;
    }
    return 0;
}

static PyObject *
lockcore_acquire(LockCore *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    int blocking = 1;

    if (nargs != 0 || kwnames != NULL) {
        int r = parse_acquire(args, nargs, kwnames, &blocking);
        if (r < 0) {
            return NULL;
        }
        if (r == 0) {
            return forward_call((PyObject *)self, str_acquire_slow, args, nargs, kwnames);
        }
    }
    if (lockcore_try(self)) {
        Py_RETURN_TRUE;
    }
    if (!blocking) {
        Py_RETURN_FALSE;
    }
    return PyObject_CallMethodNoArgs((PyObject *)self, str_acquire_blocking);
}

static PyObject *
lockcore_enter(LockCore *self, PyObject *Py_UNUSED(ignored))
{
    if (lockcore_try(self)) {
        Py_RETURN_TRUE;
    }
    return PyObject_CallMethodNoArgs((PyObject *)self, str_acquire_blocking);
}

static PyObject *
lockcore_try_acquire(LockCore *self, PyObject *Py_UNUSED(ignored))
{
    return PyBool_FromLong(lockcore_try(self));
}

static PyObject *
lockcore_release(LockCore *self, PyObject *Py_UNUSED(ignored))
{
    if (!self->locked) {
        PyErr_SetString(PyExc_RuntimeError, "release unlocked lock");
        return NULL;
    }
    self->locked = 0;
    PyThread_release_lock(self->lock);
    if (wake_if_waiting((PyObject *)self, self->waiters) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
lockcore_exit(LockCore *self, PyObject *const *Py_UNUSED(args), Py_ssize_t Py_UNUSED(nargs))
{
    return lockcore_release(self, NULL);
}

static PyObject *
lockcore_locked(LockCore *self, PyObject *Py_UNUSED(ignored))
{
    return PyBool_FromLong(self->locked);
}

static PyObject *
lockcore_at_fork_reinit(LockCore *self, PyObject *Py_UNUSED(ignored))
{
    /* As CPython's _PyThread_at_fork_reinit(): the old lock may be in an
       inconsistent state in the child, so it is neither used nor freed. */
    PyThread_type_lock lock = PyThread_allocate_lock();

    if (lock == NULL) {
        PyErr_SetString(PyExc_MemoryError, "can't allocate lock");
        return NULL;
    }
    self->lock = lock;
    self->locked = 0;
    Py_RETURN_NONE;
}

static PyMethodDef lockcore_methods[] = {
    {"acquire", (PyCFunction)(void (*)(void))lockcore_acquire, METH_FASTCALL | METH_KEYWORDS,
     "acquire(blocking=True, timeout=-1) -> bool"},
    {"release", (PyCFunction)lockcore_release, METH_NOARGS, "release()"},
    {"__enter__", (PyCFunction)lockcore_enter, METH_NOARGS, "acquire()"},
    {"__exit__", (PyCFunction)(void (*)(void))lockcore_exit, METH_FASTCALL, "release()"},
    {"locked", (PyCFunction)lockcore_locked, METH_NOARGS, "True if the lock is held."},
    {"_try_acquire", (PyCFunction)lockcore_try_acquire, METH_NOARGS,
     "Acquire without waiting; True on success."},
    {"_at_fork_reinit", (PyCFunction)lockcore_at_fork_reinit, METH_NOARGS,
     "Reset the native lock to unlocked (in a forked child)."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef lockcore_members[] = {
    {"_waiters", Py_T_OBJECT_EX, offsetof(LockCore, waiters), 0,
     "The waiter FIFO (a WaitQueue) of the lock's ParkingLot."},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject LockCore_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "threadpatch._speedups.LockCore",
    .tp_basicsize = sizeof(LockCore),
    .tp_dealloc = (destructor)lockcore_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "C core of threadpatch.Lock (fast paths only).",
    .tp_traverse = (traverseproc)lockcore_traverse,
    .tp_clear = (inquiry)lockcore_clear,
    .tp_weaklistoffset = offsetof(LockCore, weakreflist),
    .tp_methods = lockcore_methods,
    .tp_members = lockcore_members,
    .tp_new = lockcore_new,
};

/* -- RLockCore ----------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    PyThread_type_lock lock;
    unsigned long owner;
    unsigned long count;
    PyObject *waiters;
    PyObject *weakreflist;
} RLockCore;

static PyObject *
rlockcore_new(PyTypeObject *type, PyObject *Py_UNUSED(args), PyObject *Py_UNUSED(kwds))
{
    RLockCore *self = (RLockCore *)type->tp_alloc(type, 0);

    if (self == NULL) {
        return NULL;
    }
    self->lock = PyThread_allocate_lock();
    if (self->lock == NULL) {
        Py_DECREF(self);
        PyErr_SetString(PyExc_MemoryError, "can't allocate lock");
        return NULL;
    }
    return (PyObject *)self;
}

static int
rlockcore_traverse(RLockCore *self, visitproc visit, void *arg)
{
    Py_VISIT(self->waiters);
    return 0;
}

static int
rlockcore_clear(RLockCore *self)
{
    Py_CLEAR(self->waiters);
    return 0;
}

static void
rlockcore_dealloc(RLockCore *self)
{
    PyObject_GC_UnTrack(self);
    if (self->weakreflist != NULL) {
        PyObject_ClearWeakRefs((PyObject *)self);
    }
    Py_CLEAR(self->waiters);
    if (self->lock != NULL) {
        if (self->count > 0) {
            PyThread_release_lock(self->lock);
        }
        PyThread_free_lock(self->lock);
    }
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Take one level without waiting: 1 taken, 0 busy, -1 error (overflow). */
static inline int
rlockcore_try(RLockCore *self)
{
    unsigned long tid = PyThread_get_thread_ident();

    if (self->count > 0 && self->owner == tid) {
        unsigned long count = self->count + 1;
        if (count <= self->count) {
            PyErr_SetString(PyExc_OverflowError, "Internal lock count overflowed");
            return -1;
        }
        self->count = count;
        return 1;
    }
    if (PyThread_acquire_lock(self->lock, NOWAIT_LOCK)) {
        self->owner = tid;
        self->count = 1;
        return 1;
    }
    return 0;
}

static PyObject *
rlockcore_acquire(RLockCore *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    int blocking = 1;
    int r;

    if (nargs != 0 || kwnames != NULL) {
        r = parse_acquire(args, nargs, kwnames, &blocking);
        if (r < 0) {
            return NULL;
        }
        if (r == 0) {
            return forward_call((PyObject *)self, str_acquire_slow, args, nargs, kwnames);
        }
    }
    r = rlockcore_try(self);
    if (r < 0) {
        return NULL;
    }
    if (r) {
        Py_RETURN_TRUE;
    }
    if (!blocking) {
        Py_RETURN_FALSE;
    }
    return PyObject_CallMethodNoArgs((PyObject *)self, str_acquire_blocking);
}

static PyObject *
rlockcore_enter(RLockCore *self, PyObject *Py_UNUSED(ignored))
{
    int r = rlockcore_try(self);

    if (r < 0) {
        return NULL;
    }
    if (r) {
        Py_RETURN_TRUE;
    }
    return PyObject_CallMethodNoArgs((PyObject *)self, str_acquire_blocking);
}

static PyObject *
rlockcore_try_acquire(RLockCore *self, PyObject *Py_UNUSED(ignored))
{
    int r = rlockcore_try(self);

    if (r < 0) {
        return NULL;
    }
    return PyBool_FromLong(r);
}

static PyObject *
rlockcore_release(RLockCore *self, PyObject *Py_UNUSED(ignored))
{
    unsigned long tid = PyThread_get_thread_ident();

    if (self->count == 0 || self->owner != tid) {
        PyErr_SetString(PyExc_RuntimeError, "cannot release un-acquired lock");
        return NULL;
    }
    if (--self->count == 0) {
        self->owner = 0;
        PyThread_release_lock(self->lock);
        if (wake_if_waiting((PyObject *)self, self->waiters) < 0) {
            return NULL;
        }
    }
    Py_RETURN_NONE;
}

static PyObject *
rlockcore_exit(RLockCore *self, PyObject *const *Py_UNUSED(args), Py_ssize_t Py_UNUSED(nargs))
{
    return rlockcore_release(self, NULL);
}

static PyObject *
rlockcore_is_owned(RLockCore *self, PyObject *Py_UNUSED(ignored))
{
    unsigned long tid = PyThread_get_thread_ident();

    return PyBool_FromLong(self->count > 0 && self->owner == tid);
}

static PyObject *
rlockcore_recursion_count(RLockCore *self, PyObject *Py_UNUSED(ignored))
{
    unsigned long tid = PyThread_get_thread_ident();

    return PyLong_FromUnsignedLong(self->owner == tid ? self->count : 0UL);
}

static PyObject *
rlockcore_owner_count(RLockCore *self, PyObject *Py_UNUSED(ignored))
{
    return Py_BuildValue("(kk)", self->owner, self->count);
}

static PyObject *
rlockcore_release_save(RLockCore *self, PyObject *Py_UNUSED(ignored))
{
    unsigned long owner, count;

    if (self->count == 0) {
        PyErr_SetString(PyExc_RuntimeError, "cannot release un-acquired lock");
        return NULL;
    }
    owner = self->owner;
    count = self->count;
    self->count = 0;
    self->owner = 0;
    PyThread_release_lock(self->lock);
    if (wake_if_waiting((PyObject *)self, self->waiters) < 0) {
        /* The lock is released either way; report the error. */
        return NULL;
    }
    return Py_BuildValue("(kk)", count, owner);
}

static PyObject *
rlockcore_acquire_restore(RLockCore *self, PyObject *state)
{
    unsigned long owner, count;

    if (!PyArg_ParseTuple(state, "kk:_acquire_restore", &count, &owner)) {
        return NULL;
    }
    if (PyThread_acquire_lock(self->lock, NOWAIT_LOCK)) {
        self->owner = owner;
        self->count = count;
        Py_RETURN_NONE;
    }
    /* Python parks (shielded) until _try_acquire() takes the lock for the
       calling thread; the saved depth is restored here afterwards. */
    PyObject *res = PyObject_CallMethodNoArgs((PyObject *)self, str_acquire_restore_slow);
    if (res == NULL) {
        return NULL;
    }
    Py_DECREF(res);
    self->owner = owner;
    self->count = count;
    Py_RETURN_NONE;
}

static PyObject *
rlockcore_at_fork_reinit(RLockCore *self, PyObject *Py_UNUSED(ignored))
{
    PyThread_type_lock lock = PyThread_allocate_lock();

    if (lock == NULL) {
        PyErr_SetString(PyExc_MemoryError, "can't allocate lock");
        return NULL;
    }
    self->lock = lock;  /* the old one is leaked on purpose, see LockCore */
    self->owner = 0;
    self->count = 0;
    Py_RETURN_NONE;
}

static PyMethodDef rlockcore_methods[] = {
    {"acquire", (PyCFunction)(void (*)(void))rlockcore_acquire, METH_FASTCALL | METH_KEYWORDS,
     "acquire(blocking=True, timeout=-1) -> bool"},
    {"release", (PyCFunction)rlockcore_release, METH_NOARGS, "release()"},
    {"__enter__", (PyCFunction)rlockcore_enter, METH_NOARGS, "acquire()"},
    {"__exit__", (PyCFunction)(void (*)(void))rlockcore_exit, METH_FASTCALL, "release()"},
    {"_try_acquire", (PyCFunction)rlockcore_try_acquire, METH_NOARGS,
     "Take one level without waiting; True on success."},
    {"_is_owned", (PyCFunction)rlockcore_is_owned, METH_NOARGS, NULL},
    {"_recursion_count", (PyCFunction)rlockcore_recursion_count, METH_NOARGS, NULL},
    {"_owner_count", (PyCFunction)rlockcore_owner_count, METH_NOARGS,
     "(owner ident, recursion count)"},
    {"_release_save", (PyCFunction)rlockcore_release_save, METH_NOARGS, NULL},
    {"_acquire_restore", (PyCFunction)rlockcore_acquire_restore, METH_O, NULL},
    {"_at_fork_reinit", (PyCFunction)rlockcore_at_fork_reinit, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef rlockcore_members[] = {
    {"_waiters", Py_T_OBJECT_EX, offsetof(RLockCore, waiters), 0,
     "The waiter FIFO (a WaitQueue) of the lock's ParkingLot."},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject RLockCore_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "threadpatch._speedups.RLockCore",
    .tp_basicsize = sizeof(RLockCore),
    .tp_dealloc = (destructor)rlockcore_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "C core of threadpatch.RLock (fast paths only).",
    .tp_traverse = (traverseproc)rlockcore_traverse,
    .tp_clear = (inquiry)rlockcore_clear,
    .tp_weaklistoffset = offsetof(RLockCore, weakreflist),
    .tp_methods = rlockcore_methods,
    .tp_members = rlockcore_members,
    .tp_new = rlockcore_new,
};


/* -- socket waits ---------------------------------------------------------
 *
 * The receive of a blocking threadpatch socket whose data is (probably) not
 * there yet: the same steps as ThreadState.wait_fd() followed by the C recv,
 * but with the GIL released once, for the poll(), instead of once per
 * syscall and twice re-taken.  Between two threads of one process ping-
 * ponging over a socket that halves the GIL hand-offs of each wake-up.
 *
 *   poll_recv(state, sock, bufsize, flags) -> bytes | None
 *   poll_recv_into(state, sock, buffer, nbytes, flags) -> int | None
 *
 * Under the GIL: give up (None) unless `state` is a ThreadState with no
 * pending interrupt and a wake-up eventfd; set its _fd_waiting and parked
 * flags, and look at `interrupt` again (a canceller that ran before the flag
 * was set did not write the eventfd).  Without the GIL: poll() the socket's
 * descriptor and the eventfd; drain the eventfd if it fired.  Under the GIL
 * again: clear the flags; if the socket is ready and still has the
 * descriptor it had before the wait, recv() from it (non-blocking: it only
 * copies what is there).  Another thread may have closed the socket while we
 * waited, and the number may name another file by now: the native call reads
 * the socket's descriptor again after its wait (-1: EBADF), and so does the
 * Python path that None hands over to.  The GIL, held from that check to the
 * recv(), keeps another thread from closing the socket in between.
 *
 * None means "nothing received, take the Python path": it re-checks the
 * interrupt (and raises it), validates odd arguments with the stdlib's own
 * errors, and waits.  Data received is always returned, also when a
 * cancellation arrived meanwhile: it stays pending for the next blocking
 * call, and no byte is lost.  EINTR runs the signal handlers (a Ctrl-C in
 * the main thread raises here, as the native call would).
 */

static PyTypeObject *state_type;  /* ThreadState, bound by bind_state_type() */
static Py_ssize_t off_interrupt, off_wake_fd, off_fd_waiting, off_parked;

static PyObject *
slot_get(PyObject *obj, Py_ssize_t offset)
{
    return *(PyObject **)((char *)obj + offset);
}

static void
slot_set(PyObject *obj, Py_ssize_t offset, PyObject *value)
{
    PyObject **slot = (PyObject **)((char *)obj + offset);
    PyObject *old = *slot;

    *slot = Py_NewRef(value);
    Py_XDECREF(old);
}

/* The byte offset of the __slots__ member `name` of `type`, or -1 with an error. */
static Py_ssize_t
slot_offset(PyObject *type, const char *name)
{
    PyObject *descr = PyObject_GetAttrString(type, name);
    Py_ssize_t offset = -1;

    if (descr == NULL) {
        return -1;
    }
    if (Py_IS_TYPE(descr, &PyMemberDescr_Type)
        && ((PyMemberDescrObject *)descr)->d_member->type == Py_T_OBJECT_EX) {
        offset = ((PyMemberDescrObject *)descr)->d_member->offset;
    }
    else {
        PyErr_Format(PyExc_TypeError, "%s is not an object slot", name);
    }
    Py_DECREF(descr);
    return offset;
}

static PyObject *
bind_state_type(PyObject *module, PyObject *type)
{
    Py_ssize_t offsets[4];
    const char *names[4] = {"interrupt", "_wake_fd", "_fd_waiting", "parked"};
    int i;

    if (!PyType_Check(type)) {
        PyErr_SetString(PyExc_TypeError, "bind_state_type() needs a class");
        return NULL;
    }
    for (i = 0; i < 4; i++) {
        offsets[i] = slot_offset(type, names[i]);
        if (offsets[i] < 0) {
            return NULL;
        }
    }
    off_interrupt = offsets[0];
    off_wake_fd = offsets[1];
    off_fd_waiting = offsets[2];
    off_parked = offsets[3];
    Py_XSETREF(state_type, (PyTypeObject *)Py_NewRef(type));
    Py_RETURN_NONE;
}

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

/* 1 if the wait may start (flags set; *wake_fd filled), 0 to give up, -1 on error. */
static int
wait_begin(PyObject *state, int *wake_fd)
{
    PyObject *value;
    int truth;

    if (state_type == NULL || Py_TYPE(state) != state_type) {
        return 0;
    }
    value = slot_get(state, off_interrupt);
    if (value == NULL || (truth = PyObject_IsTrue(value)) != 0) {
        return truth < 0 ? -1 : 0;
    }
    value = slot_get(state, off_wake_fd);
    if (value == NULL || !PyLong_CheckExact(value) || int_arg(value, wake_fd) < 0) {
        PyErr_Clear();
        return 0;
    }
    if (*wake_fd < 0) {
        return 0;
    }
    slot_set(state, off_fd_waiting, Py_True);
    slot_set(state, off_parked, Py_True);
    value = slot_get(state, off_interrupt);
    truth = value == NULL ? 1 : PyObject_IsTrue(value);
    if (truth != 0) {
        slot_set(state, off_fd_waiting, Py_False);
        slot_set(state, off_parked, Py_False);
        return truth < 0 ? -1 : 0;
    }
    return 1;
}

static void
wait_end(PyObject *state)
{
    slot_set(state, off_fd_waiting, Py_False);
    slot_set(state, off_parked, Py_False);
}

#define MAIN_THREAD_SLICE_MS 50

/* Without the GIL: wait for `fd` or the eventfd, at most `timeout_ms` (-1:
 * no limit).  Returns the revents of
 * `fd` (0: only a wake-up), or -1 with *err set. */
static int
poll_wait(int fd, int wake_fd, int timeout_ms, int *err)
{
    struct pollfd fds[2] = {{fd, POLLIN, 0}, {wake_fd, POLLIN, 0}};
    uint64_t counter;

    if (poll(fds, 2, timeout_ms) < 0) {
        *err = errno;
        return -1;
    }
    if (fds[1].revents) {
        /* A wake-up: drain the counter (it is non-blocking). */
        if (read(wake_fd, &counter, sizeof(counter)) < 0) {
            /* EAGAIN: drained by a concurrent reader; nothing to do */
        }
    }
    return fds[0].revents;
}

static int sock_fd(PyObject *self);

/* The result for an error `err` of state_poll_recv: None for "try the Python
 * path", NULL with an exception otherwise. */
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

/* Wait as `state` for socket `sock` (descriptor `fd`) and receive: 1 with *n
 * set (>= 0 received, or -1 with *err; EAGAIN: nothing received, and `fd`
 * must not be used again), 0 if it did not wait (the Python path), -1 with
 * an exception. */
static int
state_poll_recv(PyObject *state, PyObject *sock, int fd, char *buf, Py_ssize_t len, int flags,
                Py_ssize_t *n, int *err)
{
    int wake_fd, revents, timeout_ms = -1, r;
    /* The main thread waits in slices (MAIN_THREAD_SLICE in _core/_state.py):
     * a timeout reads as a wake-up, and the Python loop around this call
     * lets the interpreter run a signal handler that could not interrupt
     * the poll. */
    PyObject *is_main = PyObject_GetAttrString(state, "is_main");

    if (is_main == NULL) {
        return -1;
    }
    if (is_main == Py_True) {
        timeout_ms = MAIN_THREAD_SLICE_MS;
    }
    Py_DECREF(is_main);
    r = wait_begin(state, &wake_fd);
    if (r <= 0) {
        return r;
    }
    Py_BEGIN_ALLOW_THREADS
    revents = poll_wait(fd, wake_fd, timeout_ms, err);
    Py_END_ALLOW_THREADS
    wait_end(state);
    *n = -1;
    if (revents <= 0) {
        if (revents == 0) {
            *err = EAGAIN;  /* a wake-up */
        }
        return 1;
    }
    if (sock_fd(sock) != fd) {
        *err = EAGAIN;  /* closed (or detached) while we waited */
        return 1;
    }
    /* Readable, hung up, failed or invalid: recv() says which. */
    *n = recv(fd, buf, (size_t)len, flags | MSG_DONTWAIT);
    *err = *n < 0 ? errno : 0;
    return 1;
}

static PyObject *
poll_recv(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *state, *result;
    Py_ssize_t bufsize, n;
    int fd, flags, err, r;

    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "poll_recv(state, sock, bufsize, flags)");
        return NULL;
    }
    state = args[0];
    bufsize = PyLong_AsSsize_t(args[2]);
    if ((bufsize == -1 && PyErr_Occurred()) || int_arg(args[3], &flags) < 0) {
        PyErr_Clear();
        Py_RETURN_NONE;  /* the Python path raises the stdlib's error */
    }
    fd = sock_fd(args[1]);
    if (fd < 0 || bufsize < 0) {
        Py_RETURN_NONE;
    }
    result = PyBytes_FromStringAndSize(NULL, bufsize);
    if (result == NULL) {
        return NULL;
    }
    r = state_poll_recv(state, args[1], fd, PyBytes_AS_STRING(result), bufsize, flags, &n,
                        &err);
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
    PyObject *state;
    Py_buffer view;
    Py_ssize_t nbytes, n;
    int fd, flags, err, r;

    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "poll_recv_into(state, sock, buffer, nbytes, flags)");
        return NULL;
    }
    state = args[0];
    nbytes = PyLong_AsSsize_t(args[3]);
    if ((nbytes == -1 && PyErr_Occurred()) || int_arg(args[4], &flags) < 0
        || PyObject_GetBuffer(args[2], &view, PyBUF_WRITABLE) < 0) {
        PyErr_Clear();
        Py_RETURN_NONE;  /* the Python path raises the stdlib's error */
    }
    if (nbytes == 0) {
        nbytes = view.len;
    }
    fd = sock_fd(args[1]);
    if (fd < 0 || nbytes < 0 || nbytes > view.len) {
        PyBuffer_Release(&view);
        Py_RETURN_NONE;
    }
    r = state_poll_recv(state, args[1], fd, view.buf, nbytes, flags, &n, &err);
    PyBuffer_Release(&view);
    if (r <= 0 || n < 0) {
        return r < 0 ? NULL : r == 0 ? Py_NewRef(Py_None) : recv_failed(err);
    }
    return PyLong_FromSsize_t(n);
}

/* -- socket methods -------------------------------------------------------
 *
 * recv, recv_into and sendall of threadpatch.socket.socket, as method
 * descriptors made by socket_methods(cls, ...).  Each does only what the
 * common case needs and hands everything else, unchanged, to the Python
 * method it replaces (`fallback`), which is the reference behaviour:
 *
 *   recv / recv_into   poll-first receive (self._tp_wait set, no timeout):
 *                      the wait-and-receive above; then one non-blocking
 *                      receive; data or EOF -> return it; EAGAIN, EINTR or
 *                      anything unusual -> fallback(self, *args).
 *   sendall            one non-blocking send; all of it went -> None; a part
 *                      or nothing -> sendall_from(self, data, flags, sent);
 *                      anything unusual -> fallback(self, *args).
 *
 * A failing syscall raises OSError from errno, as the C socket does.
 */

static PyObject *c_fileno;        /* _socket.socket.fileno */
static PyObject *thread_local;    /* _state._tls: .state is the thread's ThreadState */
static PyObject *current_state;   /* _core.current_state(), when .state is not set yet */
static PyObject *recv_fallback, *recv_into_fallback, *sendall_fallback, *sendall_from;
static PyObject *str_tp_wait, *str_tp_timeout, *str_state;

/* The socket's descriptor, or -1 (closed, not bound yet, or an error: cleared). */
static int
sock_fd(PyObject *self)
{
    PyObject *res;
    long fd;

    if (c_fileno == NULL) {
        return -1;  /* socket_methods() not called yet */
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
    PyObject *wait, *timeout, *less;
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
    less = PyLong_FromLong(n - 1);
    if (less == NULL) {
        return -1;
    }
    r = PyObject_SetAttr(self, str_tp_wait, less);
    Py_DECREF(less);
    return r < 0 ? -1 : 1;
}

/* The calling thread's ThreadState (new reference), or NULL with an error. */
static PyObject *
this_state(void)
{
    PyObject *state = PyObject_GetAttr(thread_local, str_state);

    if (state != NULL || !PyErr_ExceptionMatches(PyExc_AttributeError)) {
        return state;
    }
    PyErr_Clear();
    return PyObject_CallNoArgs(current_state);
}

/* Receive into buf without waiting: bytes received, or -1 with *err. */
static Py_ssize_t
recv_now(int fd, char *buf, Py_ssize_t len, int flags, int *err)
{
    Py_ssize_t n;

    Py_BEGIN_ALLOW_THREADS
    n = recv(fd, buf, (size_t)len, flags);
    *err = n < 0 ? errno : 0;
    Py_END_ALLOW_THREADS
    return n;
}

/* Wait first if it is this receive's poll-first turn, then receive without
 * waiting: 1 with *n set (-1 with *err: nothing or an error), 0 to fall
 * back, -1 with an exception.  After a wait that received nothing, fall
 * back: the descriptor read before the wait may be stale by now. */
static int
receive(PyObject *self, int fd, char *buf, Py_ssize_t len, int flags, Py_ssize_t *n, int *err)
{
    PyObject *state;
    int r = len > 0 ? poll_first_turn(self) : 0;  /* a 0-byte receive never waits */

    if (r < 0) {
        return -1;
    }
    if (r) {
        state = this_state();
        if (state == NULL) {
            return -1;
        }
        r = state_poll_recv(state, self, fd, buf, len, flags, n, err);
        Py_DECREF(state);
        if (r < 0) {
            return -1;
        }
        if (r) {
            return *n >= 0 || (*err != EAGAIN && *err != EWOULDBLOCK && *err != EINTR);
        }
    }
    *n = recv_now(fd, buf, len, flags, err);
    return *n >= 0 || (*err != EAGAIN && *err != EWOULDBLOCK && *err != EINTR);
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
    n = send(fd, view.buf, (size_t)len, flags);
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

/* socket_methods(cls, fileno, tls, current_state, recv, recv_into, sendall, sendall_from)
 * -> (recv, recv_into, sendall) method descriptors for cls. */
static PyObject *
socket_methods(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject **slots[7] = {&c_fileno, &thread_local, &current_state, &recv_fallback,
                           &recv_into_fallback, &sendall_fallback, &sendall_from};
    PyObject *descrs[3];
    int i;

    if (nargs != 8 || !PyType_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "socket_methods(cls, fileno, tls, current_state, "
                                         "recv, recv_into, sendall, sendall_from)");
        return NULL;
    }
    if (state_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "bind_state_type() first");
        return NULL;
    }
    for (i = 0; i < 7; i++) {
        Py_XSETREF(*slots[i], Py_NewRef(args[i + 1]));
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

static PyMethodDef module_methods[] = {
    {"bind_state_type", bind_state_type, METH_O,
     "Let poll_recv() use the slots of this ThreadState class."},
    {"poll_recv", (PyCFunction)(void (*)(void))poll_recv, METH_FASTCALL,
     "Wait for a socket (or a wake-up) and receive: bytes, or None for the Python path."},
    {"poll_recv_into", (PyCFunction)(void (*)(void))poll_recv_into, METH_FASTCALL,
     "Wait for a socket (or a wake-up) and receive into a buffer: int, or None."},
    {"socket_methods", (PyCFunction)(void (*)(void))socket_methods, METH_FASTCALL,
     "recv, recv_into and sendall of threadpatch's socket class, in C."},
    {NULL, NULL, 0, NULL},
};

/* -- module -------------------------------------------------------------- */

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "threadpatch._speedups",
    .m_doc = "C fast paths of threadpatch.Lock, threadpatch.RLock and socket receives.",
    .m_size = -1,
    .m_methods = module_methods,
};

static int
intern_names(void)
{
    struct {
        PyObject **slot;
        const char *text;
    } names[] = {
        {&str_acquire_slow, "_acquire_slow"},
        {&str_acquire_blocking, "_acquire_blocking"},
        {&str_acquire_restore_slow, "_acquire_restore_slow"},
        {&str_wake, "_wake"},
        {&str_blocking, "blocking"},
        {&str_timeout, "timeout"},
        {&str_tp_wait, "_tp_wait"},
        {&str_tp_timeout, "_tp_timeout"},
        {&str_state, "state"},
    };
    size_t i;

    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (*names[i].slot == NULL) {
            *names[i].slot = PyUnicode_InternFromString(names[i].text);
            if (*names[i].slot == NULL) {
                return -1;
            }
        }
    }
    return 0;
}

PyMODINIT_FUNC
PyInit__speedups(void)
{
    PyObject *m;

    if (intern_names() < 0) {
        return NULL;
    }
    if (PyType_Ready(&LockCore_Type) < 0 || PyType_Ready(&RLockCore_Type) < 0) {
        return NULL;
    }
    m = PyModule_Create(&speedups_module);
    if (m == NULL) {
        return NULL;
    }
    if (PyModule_AddObjectRef(m, "LockCore", (PyObject *)&LockCore_Type) < 0
        || PyModule_AddObjectRef(m, "RLockCore", (PyObject *)&RLockCore_Type) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
