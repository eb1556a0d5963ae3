"""The 64 KB bound on a request's head (service/http_limits.py) must not count bodies: a
whole request (head and body) that arrives in one read is not a large head."""

from __future__ import annotations

import json
import socket

from tests.helpers import Server, read_http_response


def test_a_whole_request_in_one_read_is_not_a_large_head(module_server: Server) -> None:
    """A 100 KB body sent with its head in one write reached the server in one read on
    loopback and was counted as head: 431 for an ordinary checkpoint upload."""
    body = json.dumps({"name": "x" * 100_000}).encode()
    head = (
        "POST /v1/jobs HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", module_server.port), timeout=20) as sock:
        for _ in range(3):  # kept alive: each request is judged on its own
            sock.sendall(head + body)
            status, answer = read_http_response(sock)
            # The name is too long: refused by validation, not by the head's bound.
            assert status == 422, (status, answer[:500])
