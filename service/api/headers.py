"""Headers every response carries, whatever answered it (a route, the request gate, an error):
no page of this server may be framed by another site (clickjacking), no body is sniffed into
another type, no URL of it leaks to other sites as a referrer, and each kind of response has a
Content-Security-Policy that allows only what it loads.

The policies: ``PAGE_CSP`` for the dashboard (``/``) and the static files (``/static/``),
``IMAGE_CSP`` for the figures, ``API_CSP`` for everything else (JSON, event streams, errors).
/docs and /redoc set their own (``docs_policy``, docs.py) on the response, and a policy a
response brings is kept.
"""

from __future__ import annotations

import base64
import hashlib
import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

FRAME_ANCESTORS = "frame-ancestors 'none'"
# A response that is no page loads nothing: if a browser is ever tricked into rendering one
# (a JSON body read as HTML), no script or style in it runs.
API_CSP = f"default-src 'none'; {FRAME_ANCESTORS}"
# A figure opened in a tab: a PNG is shown by the browser's own image page, which styles it
# with style attributes (Chromium's: centring, zoom cursor), and matplotlib's SVG carries a
# <style> of its own. Styles only: no script may run in either.
IMAGE_CSP = f"default-src 'none'; style-src 'unsafe-inline'; {FRAME_ANCESTORS}"
# The dashboard's modules, styles and uPlot are files of this origin, and its calls go to it:
# no inline script or style, no eval. base-uri 'none' so an injected <base> cannot move its
# relative URLs elsewhere; its one form (the key dialog) stays here; no plugins.
PAGE_DIRECTIVES = (
    "default-src 'self'",
    "base-uri 'none'",
    "form-action 'self'",
    "object-src 'none'",
)
PAGE_CSP = "; ".join((*PAGE_DIRECTIVES, FRAME_ANCESTORS))
PAGE_PREFIXES = ("/static/",)

OTHER_HEADERS: dict[str, str] = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
_CSP = b"content-security-policy"
_RAW = [(k.lower().encode(), v.encode()) for k, v in OTHER_HEADERS.items()]
_INLINE_SCRIPT = re.compile(r"<script\b(?![^>]*\bsrc\s*=)[^>]*>(.*?)</script\s*>", re.S | re.I)


def csp_for(path: str, content_type: str) -> str:
    """The policy for a response to ``path`` of ``content_type`` that brings none of its own."""
    if path == "/" or path.startswith(PAGE_PREFIXES):
        return PAGE_CSP
    return IMAGE_CSP if content_type.startswith("image/") else API_CSP


def inline_script_hashes(html: str) -> list[str]:
    """``'sha256-…'`` of each inline ``<script>`` of ``html``, hashed as a browser does: the
    UTF-8 of the text between the tags, exactly."""
    return [
        f"'sha256-{base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()}'"
        for body in _INLINE_SCRIPT.findall(html)
    ]


def docs_policy(html: str, *extra: str) -> str:
    """A page generated with inline scripts (FastAPI's /docs and /redoc): the page policy with
    exactly the scripts of ``html`` allowed by hash, plus ``extra`` directives."""
    scripts = " ".join(("script-src 'self'", *inline_script_hashes(html)))
    return "; ".join((*PAGE_DIRECTIVES, scripts, *extra, FRAME_ANCESTORS))


class SecurityHeaders:
    """ASGI middleware adding the headers to every HTTP response's start (an event stream's
    too, before its first frame)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower(): v for k, v in headers}
                kind = present.get(b"content-type", b"").decode("latin-1").lower()
                csp = (_CSP, csp_for(scope["path"], kind).encode())
                extra = [(k, v) for k, v in (csp, *_RAW) if k not in present]
                message = {**message, "headers": [*headers, *extra]}
            await send(message)

        await self.app(scope, receive, with_headers)
