"""The ASGI app: ``uvicorn service.main:app``."""

from .api.app import create_app

app = create_app()
