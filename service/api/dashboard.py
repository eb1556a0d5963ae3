"""The dashboard: GET / serves one static page (static/dashboard/index.html) whose plain ES
modules call the v1 API from the browser. Like /docs it sits outside /v1, so it loads without
the API key; the page asks for the key when a /v1 call answers 401."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from starlette.responses import Response
from starlette.types import Scope

DASHBOARD_DIR = Path(__file__).parent / "static" / "dashboard"
DASHBOARD_URL = "/static/dashboard"
# The browser revalidates every file (a 304 when unchanged) instead of guessing a lifetime
# from Last-Modified: an upgraded server's page never runs with an older one's modules.
REVALIDATE = {"Cache-Control": "no-cache"}


class _RevalidatedFiles(StaticFiles):
    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(REVALIDATE)
        return response


def install_dashboard(app: FastAPI) -> None:
    app.mount(DASHBOARD_URL, _RevalidatedFiles(directory=DASHBOARD_DIR), name="dashboard")

    # HEAD too: uptime checks and `curl -I` ask for the page's headers only.
    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    async def dashboard() -> FileResponse:
        return FileResponse(DASHBOARD_DIR / "index.html", headers=REVALIDATE)
