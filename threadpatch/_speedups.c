/* threadpatch._speedups: optional C fast paths of threadpatch.
 *
 * The lock cores (_speedups_locks.c) and the socket waits
 * (_speedups_socket.c), the builtin-like wrapper of patched builtins
 * (_speedups_builtin.c) and the fast path of patched os.read/os.write
 * (_speedups_fdio.c), compiled into this one extension.  Everything here
 * is an accelerator of a pure-Python reference that is used when the module
 * is missing or THREADPATCH_PURE_PYTHON=1 is set (threadpatch/_accel.py);
 * the behaviour is the same.
 */

#include "_speedups.h"

int
tp_intern(PyObject **slot, const char *text)
{
    if (*slot == NULL) {
        *slot = PyUnicode_InternFromString(text);
        if (*slot == NULL) {
            return -1;
        }
    }
    return 0;
}

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "threadpatch._speedups",
    .m_doc = "C fast paths of threadpatch.Lock, threadpatch.RLock and socket waits.",
    .m_size = -1,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    PyObject *m = PyModule_Create(&speedups_module);

    if (m == NULL) {
        return NULL;
    }
    if (tp_locks_init(m) < 0 || tp_socket_init(m) < 0 || tp_builtin_init(m) < 0
        || tp_fdio_init(m) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
