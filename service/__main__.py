"""``python -m service``: serves the app with uvicorn on CURVEGAN_HOST:CURVEGAN_PORT."""

from __future__ import annotations

import uvicorn

from . import logs
from .http_limits import BoundedHttpToolsProtocol
from .settings import Settings


def main() -> None:
    settings = Settings()
    logs.configure(settings.log_level)
    uvicorn.run(
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


if __name__ == "__main__":
    main()
