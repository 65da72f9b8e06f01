"""``cnnkit serve``: an interactive CNN explorer in the browser.

Three views on one local page: the convolution playground (:mod:`cnnkit.serve.playground`),
the inside of a trained network (:mod:`cnnkit.serve.network`) and the run's report. The web
application (:mod:`cnnkit.serve.app`) needs the optional packages of
``pip install 'cnnkit[serve]'`` (Starlette and uvicorn); every number it shows is computed by
cnnkit's Python code, the page's script only draws. The server around it
(:mod:`cnnkit.serve.connections`) drops slow clients, limits connections and keeps its log
short when clients misbehave.
"""

from __future__ import annotations

import errno
import socket

from cnnkit._validate import check_int, is_loopback
from cnnkit.errors import CnnkitError, InvalidArgument

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "PortInUse", "bind", "is_loopback", "serve"]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765


class PortInUse(CnnkitError, OSError):
    """The address the server should listen on is taken by another program."""


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``(host, port)`` (port 0: any free port).

    Binding before the server starts turns a taken port into one clear error,
    :class:`PortInUse`, instead of a log line from inside the server.
    """
    port = check_int(port, "port", minimum=0)
    if port > 65535:
        raise InvalidArgument(f"port must be at most 65535, got {port}")
    try:
        family, kind, protocol, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        raise InvalidArgument(f"host {host!r} cannot be resolved ({exc.strerror})") from None
    listener = socket.socket(family, kind, protocol)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind(address)
        listener.listen(128)
    except OSError as exc:
        listener.close()
        if exc.errno == errno.EADDRINUSE:
            raise PortInUse(f"port {port} on {host} is already in use; stop the program using "
                            f"it or choose another with --port") from None
        raise InvalidArgument(f"cannot listen on {host}:{port} ({exc.strerror})") from None
    listener.setblocking(False)
    return listener


def serve(app, listener: socket.socket) -> None:
    """Serve ``app`` on an already bound socket until Ctrl-C: uvicorn, no access log, with the
    timeouts and limits of :mod:`cnnkit.serve.connections`."""
    from cnnkit.serve.connections import make_server, return_large_blocks

    return_large_blocks()
    make_server(app).run(sockets=[listener])
