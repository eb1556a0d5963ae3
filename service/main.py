"""The ASGI app: ``uvicorn service.main:app``."""

from .app import create_app

app = create_app()
