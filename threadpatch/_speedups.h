/* threadpatch._speedups: what its C files share.
 *
 *   _speedups.c          the module: definition and initialisation
 *   _speedups_locks.c    LockCore, RLockCore: the uncontended paths of Lock and RLock
 *   _speedups_socket.c   the waiting receive and the send of a blocking socket
 *   _speedups_builtin.c  BuiltinLike: a patched builtin that behaves as a builtin
 *   _speedups_fdio.c     fd_read, fd_readinto, fd_write: patched os.read/os.write's first try
 *
 * The parts share no state; each interns its own names and adds its own
 * objects to the module.
 */

#ifndef THREADPATCH_SPEEDUPS_H
#define THREADPATCH_SPEEDUPS_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#if PY_VERSION_HEX < 0x030C0000
#include <structmember.h>
#define Py_T_OBJECT_EX T_OBJECT_EX
#define Py_T_ULONG T_ULONG
#define Py_READONLY READONLY
#endif

/* Intern `text` into *slot (once); 0 on success, -1 with an exception. */
int tp_intern(PyObject **slot, const char *text);

/* Ready LockCore and RLockCore and add them to `module`; 0, or -1 with an exception. */
int tp_locks_init(PyObject *module);

/* Add the socket functions to `module`; 0, or -1 with an exception. */
int tp_socket_init(PyObject *module);

/* Ready BuiltinLike and add it to `module`; 0, or -1 with an exception. */
int tp_builtin_init(PyObject *module);

/* Add fd_read, fd_readinto, fd_write and fd_io_bind to `module`; 0, or -1 with an exception. */
int tp_fdio_init(PyObject *module);

#endif /* THREADPATCH_SPEEDUPS_H */
