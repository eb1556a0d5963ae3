"""/docs (Swagger UI) and /redoc from files this package ships (static/vendor, refreshed by
scripts/vendor_assets.py), not from a CDN: they render on a machine with no internet. Both
pages and their assets sit outside /v1, so they stay open when CURVEGAN_API_KEY is set.

FastAPI writes both pages with inline parts, so each answers with its own policy
(headers.docs_policy): its inline scripts allowed by hash, computed from the HTML it returns,
and only the few other sources each bundle needs."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from .headers import docs_policy

VENDOR_DIR = Path(__file__).parent / "static" / "vendor"
VENDOR_URL = "/static/vendor"
# swagger-ui.css draws its icons as data: images.
SWAGGER_CSP = ("img-src 'self' data:",)
# ReDoc is styled with styled-components, which writes <style> elements at run time (and the
# page has FastAPI's inline <style>): no hash can name them, so inline styles are allowed here,
# scripts still are not. Its search index runs in a Worker made from a blob: URL, and its
# (patched) logo is a data: image.
REDOC_CSP = ("img-src 'self' data:", "style-src 'self' 'unsafe-inline'", "worker-src blob:")


def _with_policy(page: HTMLResponse, extra: tuple[str, ...]) -> HTMLResponse:
    page.headers["Content-Security-Policy"] = docs_policy(bytes(page.body).decode(), *extra)
    return page


def install_docs(app: FastAPI) -> None:
    app.mount(VENDOR_URL, StaticFiles(directory=VENDOR_DIR), name="vendor")
    favicon = f"{VENDOR_URL}/swagger-ui/favicon-32x32.png"

    def page(name: str) -> dict[str, str]:
        return {"openapi_url": app.openapi_url or "/openapi.json", "title": f"{app.title} - {name}"}

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        # Swagger UI's default sends the document to validator.swagger.io for a badge.
        html = get_swagger_ui_html(
            **page("Swagger UI"),
            swagger_js_url=f"{VENDOR_URL}/swagger-ui/swagger-ui-bundle.js",
            swagger_css_url=f"{VENDOR_URL}/swagger-ui/swagger-ui.css",
            swagger_favicon_url=favicon,
            swagger_ui_parameters={"validatorUrl": None},
        )
        return _with_policy(html, SWAGGER_CSP)

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        # Fonts from Google would be the one request leaving the machine.
        html = get_redoc_html(
            **page("ReDoc"),
            redoc_js_url=f"{VENDOR_URL}/redoc/redoc.standalone.js",
            redoc_favicon_url=favicon,
            with_google_fonts=False,
        )
        return _with_policy(html, REDOC_CSP)
