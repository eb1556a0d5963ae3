"""``python -m service``: serves the app with uvicorn on CURVEGAN_HOST:CURVEGAN_PORT."""

from __future__ import annotations

import uvicorn

from .settings import Settings


def main() -> None:
    settings = Settings()
    uvicorn.run(
        "service.main:app",
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        # One process: jobs run in worker processes this one owns, and the SQLite store is
        # shared through the file, so more API processes would add nothing but contention.
        workers=1,
    )


if __name__ == "__main__":
    main()
