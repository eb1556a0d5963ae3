"""The dashboard: GET / serves one static page (static/dashboard/index.html) whose plain ES
modules call the v1 API from the browser. Like /docs it sits outside /v1, so it loads without
the API key; the page asks for the key when a /v1 call answers 401."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

DASHBOARD_DIR = Path(__file__).parent / "static" / "dashboard"
DASHBOARD_URL = "/static/dashboard"


def install_dashboard(app: FastAPI) -> None:
    app.mount(DASHBOARD_URL, StaticFiles(directory=DASHBOARD_DIR), name="dashboard")

    @app.get("/", include_in_schema=False)
    async def dashboard() -> FileResponse:
        # no-cache: the browser revalidates (a 304 when unchanged), so an upgraded server's
        # page is never mixed with the modules of an older one.
        return FileResponse(DASHBOARD_DIR / "index.html", headers={"Cache-Control": "no-cache"})
