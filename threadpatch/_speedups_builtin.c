/* BuiltinLike: a Python function dressed as the builtin it replaces.
 *
 * A builtin function of a C module is not a descriptor (stored as a class
 * attribute it does not bind), has no __dict__, and pickles by reference.
 * A Python function that patches it must behave the same: this type forwards
 * calls to the function by vectorcall (no extra frame), defines no
 * tp_descr_get and no __dict__, and carries the builtin's names read-only.
 * The pure-Python reference is threadpatch/_builtin_like.py.
 */

#include "_speedups.h"

#include <stddef.h>

#ifndef Py_TPFLAGS_HAVE_VECTORCALL
#define Py_TPFLAGS_HAVE_VECTORCALL _Py_TPFLAGS_HAVE_VECTORCALL
#endif

typedef struct {
    PyObject_HEAD
    PyObject *wrapped;   /* the Python function that is called */
    PyObject *like;      /* the builtin it replaces */
    PyObject *name;
    PyObject *qualname;
    PyObject *module;
    PyObject *doc;
    PyObject *weakreflist;
    vectorcallfunc vectorcall;
} BuiltinLike;

static PyObject *
builtin_like_vectorcall(PyObject *self, PyObject *const *args, size_t nargsf,
                        PyObject *kwnames)
{
    return PyObject_Vectorcall(((BuiltinLike *)self)->wrapped, args, nargsf, kwnames);
}

static PyObject *
builtin_like_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    PyObject *wrapped, *like;
    static char *kwlist[] = {"wrapped", "like", NULL};

    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO:BuiltinLike", kwlist, &wrapped, &like)) {
        return NULL;
    }
    if (!PyCallable_Check(wrapped)) {
        PyErr_Format(PyExc_TypeError, "BuiltinLike() needs a callable, got %R", wrapped);
        return NULL;
    }
    BuiltinLike *self = (BuiltinLike *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->vectorcall = builtin_like_vectorcall;
    self->wrapped = Py_NewRef(wrapped);
    self->like = Py_NewRef(like);
    if ((self->name = PyObject_GetAttrString(like, "__name__")) == NULL
        || (self->qualname = PyObject_GetAttrString(like, "__qualname__")) == NULL
        || (self->module = PyObject_GetAttrString(like, "__module__")) == NULL
        || (self->doc = PyObject_GetAttrString(like, "__doc__")) == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

static int
builtin_like_traverse(BuiltinLike *self, visitproc visit, void *arg)
{
    Py_VISIT(self->wrapped);
    Py_VISIT(self->like);
    Py_VISIT(self->name);
    Py_VISIT(self->qualname);
    Py_VISIT(self->module);
    Py_VISIT(self->doc);
    return 0;
}

static int
builtin_like_clear(BuiltinLike *self)
{
    Py_CLEAR(self->wrapped);
    Py_CLEAR(self->like);
    Py_CLEAR(self->name);
    Py_CLEAR(self->qualname);
    Py_CLEAR(self->module);
    Py_CLEAR(self->doc);
    return 0;
}

static void
builtin_like_dealloc(BuiltinLike *self)
{
    PyObject_GC_UnTrack(self);
    if (self->weakreflist != NULL) {
        PyObject_ClearWeakRefs((PyObject *)self);
    }
    builtin_like_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
builtin_like_repr(BuiltinLike *self)
{
    return PyUnicode_FromFormat("<built-in function %S (threadpatch: %R)>", self->name,
                                self->wrapped);
}

/* Pickle by reference, as a builtin does: the name, when __module__ holds us
 * under it; else (the builtin's module is not patched, as _socket) the builtin
 * itself, as copy.copy(builtin), which is what the builtin would unpickle as. */
static PyObject *
builtin_like_reduce(BuiltinLike *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *module = PyImport_Import(self->module);
    PyObject *found = NULL;

    if (module != NULL) {
        found = PyObject_GetAttr(module, self->qualname);
        Py_DECREF(module);
    }
    if (found == (PyObject *)self) {
        Py_DECREF(found);
        return Py_NewRef(self->qualname);
    }
    Py_XDECREF(found);
    PyErr_Clear();
    PyObject *copy = PyImport_ImportModule("copy");
    if (copy == NULL) {
        return NULL;
    }
    PyObject *copier = PyObject_GetAttrString(copy, "copy");
    Py_DECREF(copy);
    if (copier == NULL) {
        return NULL;
    }
    return Py_BuildValue("(N(O))", copier, self->like);
}

static PyMethodDef builtin_like_methods[] = {
    {"__reduce__", (PyCFunction)builtin_like_reduce, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef builtin_like_members[] = {
    {"__wrapped__", Py_T_OBJECT_EX, offsetof(BuiltinLike, wrapped), Py_READONLY, NULL},
    {"__name__", Py_T_OBJECT_EX, offsetof(BuiltinLike, name), Py_READONLY, NULL},
    {"__qualname__", Py_T_OBJECT_EX, offsetof(BuiltinLike, qualname), Py_READONLY, NULL},
    {"__module__", Py_T_OBJECT_EX, offsetof(BuiltinLike, module), Py_READONLY, NULL},
    {"__doc__", Py_T_OBJECT_EX, offsetof(BuiltinLike, doc), Py_READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject BuiltinLikeType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "threadpatch._speedups.BuiltinLike",
    .tp_basicsize = sizeof(BuiltinLike),
    .tp_dealloc = (destructor)builtin_like_dealloc,
    .tp_vectorcall_offset = offsetof(BuiltinLike, vectorcall),
    .tp_repr = (reprfunc)builtin_like_repr,
    .tp_call = PyVectorcall_Call,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_traverse = (traverseproc)builtin_like_traverse,
    .tp_clear = (inquiry)builtin_like_clear,
    .tp_weaklistoffset = offsetof(BuiltinLike, weakreflist),
    .tp_methods = builtin_like_methods,
    .tp_members = builtin_like_members,
    .tp_new = builtin_like_new,
};

int
tp_builtin_init(PyObject *module)
{
    if (PyType_Ready(&BuiltinLikeType) < 0) {
        return -1;
    }
    Py_INCREF(&BuiltinLikeType);
    if (PyModule_AddObject(module, "BuiltinLike", (PyObject *)&BuiltinLikeType) < 0) {
        Py_DECREF(&BuiltinLikeType);
        return -1;
    }
    return 0;
}
