"""uvicorn's HTTP protocol with a bound on a request's head (request line and headers).

uvicorn's default parser (httptools) has no limit of its own: a client sending 100 MB of
headers was buffered whole (server memory +96 MB, no answer). Bodies are bounded in the app
(service/intake.py); the head never reaches the app, so it is bounded here.
"""

from __future__ import annotations

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

# Browsers and proxies send a few KB; nginx's default limit is 8 KB a line, 32 KB in all.
MAX_HEAD_BYTES = 64 * 1024
_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-type: application/json\r\n"
    b"connection: close\r\n"
    b"content-length: %d\r\n\r\n%s"
)
_BODY = (
    b'{"error":"headers_too_large","message":"the request line and headers exceed %d bytes",'
    b'"field":"headers"}' % MAX_HEAD_BYTES
)


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """Counts the bytes received while a request's head is incomplete; past the limit the
    client gets a 431 and the connection is closed before the parser buffers more."""

    _head_bytes = 0
    _in_head = True  # a connection starts waiting for a request's head

    _messages = 0  # requests completed on this connection

    def data_received(self, data: bytes) -> None:
        was_in_head, messages = self._in_head, self._messages
        super().data_received(data)
        # Counted after parsing: a chunk that completes the head also carries body bytes,
        # which are not the head's (asyncio hands over at most 256 KB a call). A chunk that
        # held a whole request (head and body: a 100 KB upload arrives so on loopback) is
        # in a head again at the end, the next one's, but its bytes were mostly the body.
        completed = self._messages != messages
        if was_in_head and self._in_head and not completed and not self.transport.is_closing():
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES:
                self.transport.write(_TOO_LARGE % (len(_BODY), _BODY))
                self.transport.close()

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head, self._head_bytes = True, 0
        self._messages += 1
