"""The server's guard against slow, dead and too many clients (uvicorn's HTTP/1.1 protocol).

- **Unfinished headers.** A connection whose request headers are not complete
  :data:`HEADER_TIMEOUT` seconds after it opened (or after the first byte of its next request)
  is closed; an idle kept-alive connection is closed after :data:`KEEP_ALIVE_TIMEOUT` seconds.
  The request body has its own limit, :data:`BODY_TIMEOUT`, checked where it is read
  (:mod:`cnnkit.serve.app`).
- **Too many connections.** Beyond :func:`connection_limit` open connections (at most
  :data:`MAX_CONNECTIONS`, and fewer when the process may open few files), a new connection
  is answered 503 with ``Retry-After`` and closed at once.
- **Out of file descriptors.** When ``accept`` fails for want of descriptors, asyncio logs a
  traceback for every attempt (thousands a second); the server logs one line a minute instead.
- **Memory given back.** Large blocks go back to the system when freed
  (:func:`return_large_blocks`), so that the memory budget of :mod:`cnnkit.serve.network`
  bounds what the process holds, not only what it uses.

Every notice goes through :class:`Notices`: one line, no traceback, the same kind at most once
a minute (with the count of the ones left out).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import time

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from cnnkit.serve.network import RETRY_AFTER

__all__ = ["BODY_TIMEOUT", "HEADER_TIMEOUT", "KEEP_ALIVE_TIMEOUT", "LARGE_BLOCK",
           "MAX_CONNECTIONS", "NOTICES", "Notices", "connection_limit", "make_server",
           "return_large_blocks"]

#: Seconds a client has to send its request headers.
HEADER_TIMEOUT = 10.0
#: Seconds a client has to send its request body, once the headers are in.
BODY_TIMEOUT = 30.0
#: Seconds an idle kept-alive connection stays open.
KEEP_ALIVE_TIMEOUT = 5
#: Most connections open at once (each may hold an upload of up to 8 MiB in memory).
MAX_CONNECTIONS = 64
#: File descriptors kept for everything but connections: the listening socket, the event loop,
#: standard streams, an upload's temporary file per worker thread, the run's files.
RESERVED_DESCRIPTORS = 48
#: Queue of connections not yet accepted; uvicorn's default (2048) also makes asyncio try that
#: many accepts in a row, each failing and logged when descriptors run out.
BACKLOG = 128

#: Errors that mean the process (ENFILE: the machine) has run out of file descriptors.
OUT_OF_DESCRIPTORS = (errno.EMFILE, errno.ENFILE)


class Notices:
    """One-line log messages, each kind at most once per ``interval`` seconds.

    >>> notices = Notices(logging.getLogger("doctest"), interval=60)
    >>> [notices.say("busy", "the server is busy") for _ in range(3)]
    [True, False, False]
    """

    def __init__(self, logger: logging.Logger, *, interval: float = 60.0) -> None:
        self.logger, self.interval = logger, interval
        self._last: dict[str, float] = {}
        self._left_out: dict[str, int] = {}

    def say(self, kind: str, message: str) -> bool:
        """Log ``message`` unless a ``kind`` notice was logged less than ``interval`` ago;
        whether it was logged."""
        now = time.monotonic()
        if now - self._last.get(kind, -self.interval) < self.interval:
            self._left_out[kind] = self._left_out.get(kind, 0) + 1
            return False
        left_out = self._left_out.pop(kind, 0)
        more = f" ({left_out} more like it in the last minute)" if left_out else ""
        self.logger.warning("cnnkit serve: %s%s", message, more)
        self._last[kind] = now
        return True


#: The server's notices (logger ``cnnkit.serve``).
NOTICES = Notices(logging.getLogger("cnnkit.serve"))


def connection_limit() -> int:
    """Connections served at once: :data:`MAX_CONNECTIONS`, or fewer where the process's limit
    on open files (``ulimit -n``) leaves less beyond :data:`RESERVED_DESCRIPTORS`."""
    try:
        import resource  # Unix only
    except ImportError:
        return MAX_CONNECTIONS
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft == resource.RLIM_INFINITY:
        return MAX_CONNECTIONS
    return max(1, min(MAX_CONNECTIONS, soft - RESERVED_DESCRIPTORS))


_FULL = (b'{"error": "the server has as many connections open as it serves at once; try again '
         b'in a moment"}')
_FULL_RESPONSE = (b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
                  b"retry-after: " + str(RETRY_AFTER).encode() + b"\r\ncontent-length: "
                  + str(len(_FULL)).encode() + b"\r\nconnection: close\r\n\r\n" + _FULL)


class GuardedProtocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol with a header timeout and a limit on open connections."""

    limit = MAX_CONNECTIONS

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_timer: asyncio.TimerHandle | None = None
        if len(self.connections) > self.limit:
            NOTICES.say("connections", f"{self.limit} connections are open, the most it "
                                       "serves at once; new ones are answered 503")
            transport.write(_FULL_RESPONSE)
            transport.close()
            return
        self._wait_for_headers()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is h11.IDLE:
            self._wait_for_headers()  # the first bytes of a request, or none yet
        elif self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        super().connection_lost(exc)

    def _wait_for_headers(self) -> None:
        if self._header_timer is None and not self.transport.is_closing():
            self._header_timer = self.loop.call_later(HEADER_TIMEOUT, self._headers_too_late)

    def _headers_too_late(self) -> None:
        self._header_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            NOTICES.say("headers", f"closed a connection whose request headers were not "
                                   f"complete after {HEADER_TIMEOUT:g} s")
            self.transport.close()


def _loop_errors(loop: asyncio.AbstractEventLoop, context: dict) -> None:
    """The event loop's error handler: running out of descriptors is one notice a minute; all
    else goes to asyncio's own handler."""
    error = context.get("exception")
    if isinstance(error, OSError) and error.errno in OUT_OF_DESCRIPTORS:
        NOTICES.say("descriptors", f"out of file descriptors ({error.strerror}); new "
                                   "connections wait until some close (raise the limit with "
                                   "ulimit -n)")
        return
    loop.default_exception_handler(context)


class _Server(uvicorn.Server):
    async def startup(self, sockets=None) -> None:
        asyncio.get_running_loop().set_exception_handler(_loop_errors)
        await super().startup(sockets=sockets)


def return_large_blocks() -> None:
    """Have glibc's ``malloc`` give blocks of :data:`LARGE_BLOCK` bytes and more back to the
    system as soon as they are freed (elsewhere than glibc: nothing).

    By default glibc raises that threshold each time such a block is freed, and each worker
    thread allocates from a heap of its own; a server decoding large uploads on many threads
    then holds several times the memory it uses (24 uploads of a 4096x4096 picture at once:
    a peak of 1.0 GB instead of 0.17 GB). The setting holds for the whole process, which is
    why only ``cnnkit serve``'s own process makes it.
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt if name else None
    except (OSError, AttributeError):
        mallopt = None
    if mallopt is not None:
        mallopt(_M_MMAP_THRESHOLD, LARGE_BLOCK)


#: Blocks this large or larger are returned to the system when freed (:func:`return_large_blocks`).
LARGE_BLOCK = 2**20
_M_MMAP_THRESHOLD = -3  # glibc's malloc.h


def make_server(app) -> uvicorn.Server:
    """The uvicorn server ``cnnkit serve`` runs ``app`` with: no access log, the guarded
    protocol, the keep-alive timeout and a short accept backlog."""
    protocol = type("GuardedProtocol", (GuardedProtocol,), {"limit": connection_limit()})
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off",
                            http=protocol, timeout_keep_alive=KEEP_ALIVE_TIMEOUT,
                            backlog=BACKLOG)
    return _Server(config)
