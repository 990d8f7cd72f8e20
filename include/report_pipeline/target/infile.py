"""LOAD DATA LOCAL that can send only the one file the load is loading.

With ``local_infile`` on, the MySQL client library sends whatever file the *server* names in its
LOCAL INFILE request, not the file the statement named: a server that is not who it claims can ask
for ``/proc/self/environ`` and receive every ``AIRFLOW_CONN_*`` URI of the worker. mysqlclient's
``local_infile_dir`` would restrict that, but it needs ``MYSQL_OPT_LOAD_DATA_LOCAL_DIR`` (MySQL 8.0.21+
client); Debian's libmariadb (Connector/C 3.3) lacks it and mysqlclient raises NotSupportedError.

So the guard installs the client library's own local-infile callbacks
(``mysql_set_local_infile_handler``, in libmariadb and libmysqlclient alike) on the connection, through
ctypes: the library calls them instead of opening the requested file itself. They open a file only
while ``allow(path)`` is active and only if the request names exactly that path (a regular file, no
symlink); anything else gets an error and the server an empty packet, so no byte of it leaves.

The guard must be in place before the connection sends its first statement: a server that is not who
it claims can answer *any* statement with a file request, and client libraries without libmariadb's
"auto" mode (libmysqlclient) would send the file. ``connect_guarded`` opens a mysqlclient connection
with the guard installed the moment the handshake is done, before mysqlclient's own ``SET NAMES`` and
``SET autocommit``; callers send their session settings afterwards, never as ``init_command``.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import re
import stat
import threading
from collections.abc import Iterator
from typing import Any

from report_pipeline.errors import ConfigError, TransferError

log = logging.getLogger(__name__)

# libmariadb reads 4 KiB per callback; any size works, this only bounds one copy.
_INIT = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_void_p), ctypes.c_char_p, ctypes.c_void_p)
_READ = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint)
_END = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
_ERROR = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint)
CR_UNKNOWN_ERROR = 2000
_CLIENT_LIBRARY = re.compile(r"/lib(mariadb|mysqlclient)\.so[.\d]*$")
_lock = threading.Lock()
_library: Any = None


class UnconfinableClientError(ConfigError):
    """The MySQL client library cannot confine LOAD DATA LOCAL per connection: nothing is opened."""


def _client_library() -> Any:
    """The MySQL client library mysqlclient's ``_mysql`` module is linked against, as loaded.

    UnconfinableClientError when it cannot be found or has no per-connection local-infile handler.
    """
    global _library
    with _lock:
        if _library is None:
            import MySQLdb._mysql  # noqa: F401 - loads the client library into the process

            try:
                with open("/proc/self/maps", encoding="utf-8") as maps:
                    paths = {line.split()[-1] for line in maps if _CLIENT_LIBRARY.search(line.strip())}
            except OSError:
                paths = set()
            if len(paths) != 1:
                raise UnconfinableClientError(
                    "cannot confine LOAD DATA LOCAL per connection: mysqlclient's MySQL client library "
                    f"(libmariadb or libmysqlclient) was not found in this process (found {sorted(paths)}); "
                    "refusing to open any MySQL connection. Install mysqlclient built against libmariadb "
                    "or libmysqlclient (a shared library)."
                )
            path = paths.pop()
            library = ctypes.CDLL(path)
            if not hasattr(library, "mysql_set_local_infile_handler"):
                raise UnconfinableClientError(
                    f"cannot confine LOAD DATA LOCAL per connection: the MySQL client library {path} has no "
                    "mysql_set_local_infile_handler; refusing to open any MySQL connection. Install "
                    "mysqlclient built against libmariadb or libmysqlclient."
                )
            library.mysql_set_local_infile_handler.restype = None
            library.mysql_set_local_infile_handler.argtypes = [
                ctypes.c_void_p,
                _INIT,
                _READ,
                _END,
                _ERROR,
                ctypes.c_void_p,
            ]
            _library = library
        return _library


def _native_pointer(conn: Any) -> int:
    """The ``MYSQL *`` behind a mysqlclient connection (``_get_native_connection``, mysqlclient >= 2.1)."""
    capsule = conn._get_native_connection()
    get_name = ctypes.pythonapi.PyCapsule_GetName
    get_name.restype, get_name.argtypes = ctypes.c_char_p, [ctypes.py_object]
    get_pointer = ctypes.pythonapi.PyCapsule_GetPointer
    get_pointer.restype, get_pointer.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
    pointer = get_pointer(capsule, get_name(capsule))
    if not pointer:
        raise TransferError("cannot restrict LOAD DATA LOCAL: the connection has no native handle")
    return int(pointer)


class LocalInfileGuard:
    """Serves LOCAL INFILE requests on one connection only for the path ``allow`` names, only then."""

    def __init__(self, conn: Any) -> None:
        self._allowed: str | None = None
        self._allowed_real: str | None = None
        self._files: dict[int, int] = {}  # handle -> fd
        self._errors: dict[int, bytes] = {}
        self._next = 1
        self.refused: list[str] = []
        # Kept on the instance: the library holds raw pointers to these for the connection's life.
        self._callbacks = (_INIT(self._init), _READ(self._read), _END(self._end), _ERROR(self._error))
        _client_library().mysql_set_local_infile_handler(_native_pointer(conn), *self._callbacks, None)
        # The connection keeps its guard alive (and so the callbacks) for as long as it exists.
        conn._rp_infile_guard = self

    @contextlib.contextmanager
    def allow(self, path: str) -> Iterator[None]:
        """Let the server read exactly ``path`` (as the statement names it) while the block runs."""
        self._allowed, self._allowed_real = path, os.path.realpath(path)
        try:
            yield
        finally:
            self._allowed = self._allowed_real = None

    def _permitted(self, requested: str) -> str | None:
        """Why ``requested`` must not be sent, or None."""
        if self._allowed is None:
            return "no LOAD DATA of this pipeline is running"
        # The very string the statement sent, and still the same file once links are resolved.
        if requested != self._allowed or os.path.realpath(requested) != self._allowed_real:
            return f"the server asked for {requested!r}, the statement loads {self._allowed!r}"
        return None

    def _init(self, handle_out: Any, filename: bytes | None, _userdata: Any) -> int:
        handle = self._next
        self._next += 1
        handle_out[0] = handle
        requested = os.fsdecode(filename or b"")
        reason = self._permitted(requested)
        fd = -1
        if reason is None:
            try:
                fd = os.open(requested, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    reason = f"{requested!r} is not a regular file"
            except OSError as exc:
                reason = f"cannot open {requested!r}: {exc.strerror}"
        if reason is not None:
            if fd >= 0:
                os.close(fd)
            self.refused.append(requested)
            log.error("refused the server's LOCAL INFILE request: %s", reason)
            self._errors[handle] = f"LOCAL INFILE request refused: {reason}".encode()[:500]
            return 1
        self._files[handle] = fd
        return 0

    def _read(self, handle: int | None, buffer: int, size: int) -> int:
        fd = self._files.get(handle or 0)
        if fd is None:
            return -1
        try:
            data = os.read(fd, size)
        except OSError:
            return -1
        ctypes.memmove(buffer, data, len(data))
        return len(data)

    def _end(self, handle: int | None) -> None:
        fd = self._files.pop(handle or 0, None)
        if fd is not None:
            os.close(fd)

    def _error(self, handle: int | None, buffer: int, size: int) -> int:
        message = self._errors.pop(handle or 0, b"LOCAL INFILE read failed")[: max(size - 1, 0)]
        ctypes.memmove(buffer, message + b"\0", len(message) + 1)
        return CR_UNKNOWN_ERROR


def require_confinable_client() -> None:
    """Refuse (UnconfinableClientError) unless this process's client library can confine LOCAL INFILE.

    Called before any MySQL connection is opened, so a worker on such a library sends nothing.
    """
    _client_library()


def guard_of(conn: Any) -> LocalInfileGuard:
    """The connection's guard: the one ``connect_guarded`` installed, or a new one (late, for connections
    opened elsewhere, e.g. by tests)."""
    guard = getattr(conn, "_rp_infile_guard", None)
    return guard if isinstance(guard, LocalInfileGuard) else LocalInfileGuard(conn)


def connect_guarded(**config: Any) -> Any:
    """A mysqlclient connection whose LOCAL INFILE guard is installed before its first statement.

    ``config`` is ``MySQLdb.connect``'s keywords; ``init_command`` is refused, as it runs before the
    guard could be installed.
    """
    if config.get("init_command"):
        raise ValueError("init_command runs before the LOCAL INFILE guard; send session settings afterwards")
    require_confinable_client()
    return _guarded_connection_class()(**config)


_connection_class: Any = None


def _guarded_connection_class() -> Any:
    """``MySQLdb.connections.Connection`` with the guard installed right after the C-level connect.

    ``Connection.__init__`` calls ``super().__init__`` (``_mysql.connection``: the handshake) and only
    then sends ``SET NAMES`` and ``SET autocommit``; a class between the two in the MRO runs in that gap.
    """
    global _connection_class
    if _connection_class is None:
        from MySQLdb import _mysql
        from MySQLdb.connections import Connection

        class _GuardAfterHandshake(_mysql.connection):  # type: ignore[misc,name-defined]
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, **kwargs)
                try:
                    LocalInfileGuard(self)
                except BaseException:
                    self.close()
                    raise

        class GuardedConnection(Connection, _GuardAfterHandshake):  # type: ignore[misc]
            """A mysqlclient connection that answers LOCAL INFILE requests only through its guard."""

        _connection_class = GuardedConnection
    return _connection_class
