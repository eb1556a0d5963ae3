"""/docs (Swagger UI) and /redoc from files this package ships (static/vendor, refreshed by
scripts/vendor_assets.py), not from a CDN: they render on a machine with no internet. Both
pages and their assets sit outside /v1, so they stay open when CURVEGAN_API_KEY is set."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

VENDOR_DIR = Path(__file__).parent / "static" / "vendor"
VENDOR_URL = "/static/vendor"


def install_docs(app: FastAPI) -> None:
    app.mount(VENDOR_URL, StaticFiles(directory=VENDOR_DIR), name="vendor")
    favicon = f"{VENDOR_URL}/swagger-ui/favicon-32x32.png"

    def page(name: str) -> dict[str, str]:
        return {"openapi_url": app.openapi_url or "/openapi.json", "title": f"{app.title} - {name}"}

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        # Swagger UI's default sends the document to validator.swagger.io for a badge.
        return get_swagger_ui_html(
            **page("Swagger UI"),
            swagger_js_url=f"{VENDOR_URL}/swagger-ui/swagger-ui-bundle.js",
            swagger_css_url=f"{VENDOR_URL}/swagger-ui/swagger-ui.css",
            swagger_favicon_url=favicon,
            swagger_ui_parameters={"validatorUrl": None},
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        # Fonts from Google would be the one request leaving the machine.
        return get_redoc_html(
            **page("ReDoc"),
            redoc_js_url=f"{VENDOR_URL}/redoc/redoc.standalone.js",
            redoc_favicon_url=favicon,
            with_google_fonts=False,
        )
