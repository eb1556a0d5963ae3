"""``python -m service``: serves the app with uvicorn on CURVEGAN_HOST:CURVEGAN_PORT."""

from __future__ import annotations

import socket

import uvicorn

from . import logs
from .api.http_protocol import BoundedHttpToolsProtocol
from .core.events import drain_all
from .settings import Settings


class _Server(uvicorn.Server):
    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        drain_all()  # open event streams end now, not when their jobs do (see drain_all)
        await super().shutdown(sockets)


def main() -> None:
    settings = Settings()
    logs.configure(settings.log_level)
    config = uvicorn.Config(
        "service.main:app",
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        http=BoundedHttpToolsProtocol,
        # One process: it owns its pool of training workers. More uvicorn processes would be
        # safe (they share the store's queue under leases) but each would bring a pool of its
        # own; to serve more clients, run more servers or use cluster mode (docs/scaling.md).
        workers=1,
    )
    _Server(config).run()


if __name__ == "__main__":
    main()
