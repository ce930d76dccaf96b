"""HTTP/1.1 keep-alive for moto's server (werkzeug's development server closes every connection).

Werkzeug's request handler sends ``Connection: close`` on every response, because after a
request it drains whatever is left on the socket, which on a kept-alive connection would
swallow the client's next request. So every boto3 call to the local moto server opened a new
TCP connection and the server a new thread for it: StartExecution and DescribeExecution paid
that each time (about a sixth of the server's CPU per execution under load).

:class:`KeepAliveRequestHandler` keeps the connection open where that is safe: an HTTP/1.1
request that did not ask to close and has no body or a ``Content-Length`` body. During the
request the socket's reader is bounded to that body, so werkzeug's drain reads at most what is
left of it (never the next request), and whatever the application did not read is discarded
before the next request line is parsed. Chunked request bodies, HTTP/1.0 and ``Connection:
close`` requests keep werkzeug's close-after-response behaviour. Responses go out with
TCP_NODELAY: small responses on a kept-alive connection would otherwise wait on Nagle's
algorithm and the peer's delayed ACK (~40 ms).

This relies on werkzeug's request handler internals (``run_wsgi`` hands ``self.rfile`` to the
application and drains it; it always sends ``Connection: close``) and on moto's
``MotoRequestHandler``, so :data:`FENCE` names the versions it was tested on. With any other
werkzeug or moto installed, the handler behaves exactly as its stock base class: werkzeug's
close-after-every-response (local/version_fence.py).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

from local.version_fence import VersionFence

try:
    from moto.moto_server.werkzeug_app import MotoRequestHandler as StockRequestHandler
except ImportError:  # a moto without its own handler serves with werkzeug's
    from werkzeug.serving import WSGIRequestHandler as StockRequestHandler

# The versions the keep-alive handling was tested on (the lock requirements-dev.txt pins them).
FENCE = VersionFence("local/keepalive.py", {"werkzeug": "3.1.9", "moto": "5.2.5"})


class BoundedBody(io.RawIOBase):
    """The request body on a kept-alive connection: at most ``length`` bytes of ``stream``."""

    def __init__(self, stream: Any, length: int) -> None:
        super().__init__()
        self._stream = stream
        self.remaining = length

    def readable(self) -> bool:
        return True

    def _take(self, read: Callable[[int], bytes], size: int | None) -> bytes:
        wanted = self.remaining if size is None or size < 0 else min(size, self.remaining)
        if wanted <= 0:
            return b""
        data = read(wanted)
        # An empty read means the client went away mid-body: nothing more of it will come.
        self.remaining = self.remaining - len(data) if data else 0
        return data

    def read(self, size: int | None = -1) -> bytes:
        return self._take(self._stream.read, size)

    def readline(self, size: int | None = -1) -> bytes:
        return self._take(self._stream.readline, size)

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def discard_rest(self) -> None:
        while self.remaining > 0 and self.read(65536):
            pass


class KeepAliveRequestHandler(StockRequestHandler):
    """moto's request handler with keep-alive connections where the body is delimited; on
    versions :data:`FENCE` does not name, moto's handler unchanged."""

    # Set here rather than by werkzeug's make_server, which sets it on a threaded server's
    # handler class only when the class does not: the stock value for local mode's server.
    protocol_version = "HTTP/1.1"
    _keep_alive = False

    @property
    def disable_nagle_algorithm(self) -> bool:  # type: ignore[override]
        return FENCE.allows()

    def _body_length(self) -> int | None:
        """The request body's length if the connection can stay open after it, else None."""
        if self.close_connection or self.request_version != "HTTP/1.1":
            return None
        if self.headers.get("Transfer-Encoding"):
            return None
        length = self.headers.get("Content-Length", "0").strip()
        return int(length) if length.isdigit() else None

    def run_wsgi(self) -> None:
        length = self._body_length() if FENCE.allows() else None
        self._keep_alive = length is not None
        if length is None:
            super().run_wsgi()
            return
        connection_reader = self.rfile
        body = BoundedBody(connection_reader, length)
        self.rfile = body  # werkzeug hands self.rfile to the app as wsgi.input, then drains it
        try:
            super().run_wsgi()
            if not self.close_connection:
                body.discard_rest()
        finally:
            self.rfile = connection_reader
            self._keep_alive = False

    def send_header(self, keyword: str, value: str) -> None:
        if self._keep_alive and keyword.lower() == "connection" and value.lower() == "close":
            return  # werkzeug's unconditional close; http.server would also stop reading
        super().send_header(keyword, value)
