"""An HTTP proxy on loopback that answers 429 before it forwards: a rate-limited Hub.

It stands in front of a real Hub-compatible server (olah, see :mod:`localhub`) and answers
the first ``n_limited`` requests with ``429 Too Many Requests`` and a ``Retry-After``
header, then forwards every request to the server and counts the bytes of the bodies it
sends back, so that a test can check what a client downloaded.
"""

from __future__ import annotations

import http.client
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from massdyn.testing.localhub import free_port

HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade"}


class ThrottlingProxy:
    """Forward to ``upstream`` (``http://host:port``) after ``n_limited`` 429 answers.

    Args:
        upstream: The server to forward to.
        n_limited: How many requests to answer with 429 first.
        retry_after: The ``Retry-After`` the 429 answers carry, in seconds.
        only: A regex on the request path; only matching requests are limited.

    Attributes:
        limited: 429 answers given so far.
        forwarded: Requests forwarded, as ``(method, path, status)``.
        body_bytes: Bytes of response bodies sent back to clients.
    """

    def __init__(
        self,
        upstream: str,
        n_limited: int = 0,
        retry_after: float = 1.0,
        only: str | None = None,
    ):
        self.upstream = urlsplit(upstream)
        self.n_limited = n_limited
        # A regex on the request path: only matching requests are limited (e.g. weight
        # downloads, while listings pass).
        self.only = re.compile(only) if only else None
        self.retry_after = retry_after
        self.limited = 0
        self.forwarded: list[tuple[str, str, int]] = []
        self.body_bytes = 0
        self.port = free_port()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        """Base URL to use as HF_ENDPOINT."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ThrottlingProxy:
        """Serve in a background thread."""
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _handle(self):
                with proxy._lock:
                    limit = proxy.limited < proxy.n_limited and (
                        proxy.only is None or proxy.only.search(self.path) is not None
                    )
                    if limit:
                        proxy.limited += 1
                if limit:
                    body = b'{"error": "rate limited"}'
                    self.send_response(429)
                    self.send_header("Retry-After", f"{proxy.retry_after:g}")
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(body)
                    return
                length = int(self.headers.get("Content-Length") or 0)
                data = self.rfile.read(length) if length else None
                conn = http.client.HTTPConnection(
                    proxy.upstream.hostname, proxy.upstream.port, timeout=60
                )
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
                headers["Host"] = proxy.upstream.netloc
                conn.request(self.command, self.path, body=data, headers=headers)
                resp = conn.getresponse()
                body = resp.read()
                self.send_response(resp.status)
                head = self.command == "HEAD"  # its Content-Length is the file's: keep it
                for k, v in resp.getheaders():
                    if k.lower() in HOP or (k.lower() == "content-length" and not head):
                        continue
                    if k.lower() == "location":  # keep redirects on the proxy
                        v = v.replace(f"//{proxy.upstream.netloc}", f"//127.0.0.1:{proxy.port}")
                    self.send_header(k, v)
                if not head:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if not head:
                    self.wfile.write(body)
                    with proxy._lock:
                        proxy.body_bytes += len(body)
                with proxy._lock:
                    proxy.forwarded.append((self.command, self.path, resp.status))
                conn.close()

            do_GET = do_HEAD = do_POST = _handle  # noqa: N815 - the names http.server calls

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
