/* threadpatch._speedups, part 1: the uncontended paths of Lock and RLock.
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
 * A LockCore records its owner too (`_owner`: the thread ident of the
 * acquirer, 0 when free), for diagnostics (who holds what).
 */

#include "_speedups.h"

#include <stddef.h>

/* Interned names, created by tp_locks_init(). */
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
    unsigned long owner; /* thread ident of the holder, 0 when free */
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
        self->owner = PyThread_get_thread_ident();
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
    self->owner = 0;
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
    self->owner = 0;
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
    {"_owner", Py_T_ULONG, offsetof(LockCore, owner), Py_READONLY,
     "Thread ident of the thread that holds the lock (0: not held)."},
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



int
tp_locks_init(PyObject *module)
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
    };

    size_t i;

    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (tp_intern(names[i].slot, names[i].text) < 0) {
            return -1;
        }
    }
    if (PyType_Ready(&LockCore_Type) < 0 || PyType_Ready(&RLockCore_Type) < 0) {
        return -1;
    }
    if (PyModule_AddObjectRef(module, "LockCore", (PyObject *)&LockCore_Type) < 0
        || PyModule_AddObjectRef(module, "RLockCore", (PyObject *)&RLockCore_Type) < 0) {
        return -1;
    }
    return 0;
}
