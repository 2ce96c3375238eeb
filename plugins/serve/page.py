"""The web page at `/` and the API reference at `/docs`: files of this package, no external URL anywhere.

The pages load only their own scripts and styles (a Content-Security-Policy of 'self' makes the browser
refuse anything else), so they work on a machine without internet access and leak nothing to a CDN.
"""

from __future__ import annotations

from importlib import resources

from fastapi import FastAPI
from fastapi.responses import Response

#: path -> (file in page/, media type); nothing else is served from the folder.
FILES = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/docs": ("docs.html", "text/html; charset=utf-8"),
    "/page/page.js": ("page.js", "text/javascript; charset=utf-8"),
    "/page/docs.js": ("docs.js", "text/javascript; charset=utf-8"),
    "/page/page.css": ("page.css", "text/css; charset=utf-8"),
}
HEADERS = {
    "content-security-policy": "default-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-cache",
}


def read(name: str) -> bytes:
    """A file of the page folder."""
    return resources.files("transduce_builtins.serve").joinpath("page", name).read_bytes()


def add_routes(app: FastAPI) -> None:
    """GET routes for FILES, read once now."""
    for path, (name, media_type) in FILES.items():
        app.add_api_route(path, _responder(read(name), media_type), methods=["GET"], include_in_schema=False)


def _responder(content: bytes, media_type: str):  # noqa: ANN202 - a FastAPI endpoint
    async def respond() -> Response:
        return Response(content, media_type=media_type, headers=HEADERS)

    return respond
