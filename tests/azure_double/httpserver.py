"""A small threaded HTTPS/1.1 server with full control of the wire (keep-alive, chunked bodies,
streamed responses, connections dropped mid-request or mid-response), which an ASGI server would
hide. Each connection gets its own thread; the TLS handshake happens in that thread."""
from __future__ import annotations

import socket
import ssl
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator
from urllib.parse import parse_qsl, unquote, urlsplit


class DropConnection(Exception):
    """Raised by a handler or a response stream: abort the TCP connection (RST), send nothing more."""


@dataclass
class Request:
    method: str
    target: str                  # path?query exactly as sent
    path: str                    # percent-decoded path
    raw_path: str                # path as sent
    query: dict[str, str]        # decoded; names keep their case
    headers: dict[str, str]      # lower-case names
    body: bytes = b""
    host: str = ""

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)

    def q(self, name: str, default: str | None = None) -> str | None:
        """Query parameter, name matched case-insensitively (as ARM does)."""
        for k, v in self.query.items():
            if k.lower() == name.lower():
                return v
        return default


@dataclass
class Response:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    stream: Iterator[bytes] | None = None   # sent chunked; may raise DropConnection


class Hooks:
    """What the server asks its owner."""

    def latency(self) -> float:
        return 0.0

    def reset_after(self, method: str, target: str) -> int | None:
        return None

    def handle(self, request: Request) -> Response:
        raise NotImplementedError

    def logged(self, request: Request | None, method: str, target: str, status: int, bytes_in: int) -> None:
        pass


def _abort(sock: socket.socket) -> None:
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "AzureTestDouble/1.0"
    sys_version = ""
    timeout = 60

    def log_message(self, format, *args):  # noqa: A002 - quiet
        pass

    def handle(self):
        try:
            super().handle()
        except (ConnectionError, ssl.SSLError, OSError, _Aborted):
            pass

    def finish(self):
        try:
            super().finish()
        except OSError:
            pass

    def _dispatch(self) -> None:
        hooks: Hooks = self.server.hooks  # type: ignore[attr-defined]
        delay = hooks.latency()
        if delay:
            time.sleep(delay)
        target = self.path
        parts = urlsplit(target)
        headers = {k.lower(): v for k, v in self.headers.items()}
        reset = hooks.reset_after(self.command, target)
        if reset is not None:
            got = self._read_body(headers, limit=reset)
            hooks.logged(None, self.command, target, 0, len(got))
            self.close_connection = True
            _abort(self.connection)
            raise _Aborted()
        body = self._read_body(headers)
        req = Request(self.command, target, unquote(parts.path), parts.path,
                      dict(parse_qsl(parts.query, keep_blank_values=True)), headers, body,
                      headers.get("host", ""))
        try:
            resp = hooks.handle(req)
        except DropConnection:
            hooks.logged(req, self.command, target, 0, len(body))
            self.close_connection = True
            _abort(self.connection)
            raise _Aborted()
        hooks.logged(req, self.command, target, resp.status, len(body))
        self._send(resp)

    def _read_body(self, headers: dict[str, str], limit: int | None = None) -> bytes:
        if headers.get("transfer-encoding", "").lower() == "chunked":
            out = bytearray()
            while limit is None or len(out) < limit:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                out += self.rfile.read(size)
                self.rfile.readline()
            return bytes(out if limit is None else out[:limit])
        length = int(headers.get("content-length") or 0)
        if limit is not None:
            length = min(length, limit)
        out = bytearray()
        while len(out) < length:
            chunk = self.rfile.read(min(1 << 20, length - len(out)))
            if not chunk:
                break
            out += chunk
        return bytes(out)

    def _send(self, resp: Response) -> None:
        self.send_response_only(resp.status)
        names = {k.lower() for k in resp.headers}
        for k, v in resp.headers.items():
            self.send_header(k, str(v))
        if "date" not in names:
            self.send_header("Date", self.date_time_string())
        if resp.stream is not None:
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            try:
                for chunk in resp.stream:
                    if chunk:
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                        self.wfile.flush()
            except DropConnection:
                self.close_connection = True
                _abort(self.connection)
                raise _Aborted()
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
            return
        if "content-length" not in names:
            self.send_header("Content-Length", str(len(resp.body)))
        self.end_headers()
        if self.command != "HEAD" and resp.body:
            self.wfile.write(resp.body)
        self.wfile.flush()

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = _dispatch


class _Aborted(Exception):
    pass


class HTTPSServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, hooks: Hooks, ssl_context: ssl.SSLContext, host: str = "127.0.0.1", port: int = 0):
        super().__init__((host, port), _Handler)
        self.hooks = hooks
        self.ssl_context = ssl_context
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self.server_address[1]

    def finish_request(self, request, client_address):
        request.settimeout(60)
        with self._conns_lock:
            self._conns.add(request)
        try:
            tls = self.ssl_context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            with self._conns_lock:
                self._conns.discard(request)
            return
        try:
            self.RequestHandlerClass(tls, client_address, self)
        finally:
            with self._conns_lock:
                self._conns.discard(request)

    def shutdown_request(self, request):
        try:
            request.close()
        except OSError:
            pass

    def start(self) -> "HTTPSServer":
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"azure-double-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        with self._conns_lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
