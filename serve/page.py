"""The web page the gateway serves at ``/``: its three static files (shipped in serve/web/, read once) and the
read-only JSON the dashboard draws (``serve.dashboard``). The page and its files are open, so a browser can
load them and then ask for the key; the data endpoints sit behind the key like every other /v1 route.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import Response

from serve.dashboard import Dashboard

WEB = Path(__file__).resolve().parent / "web"
FILES = {"/": ("index.html", "text/html"), "/static/app.js": ("app.js", "text/javascript"),
         "/static/style.css": ("style.css", "text/css")}  # fmt: skip
PAGE_PATHS = set(FILES)
# the page may talk to its own origin only: scripts, styles, fetches and images (the favicon is inline)
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")  # fmt: skip


def add_page_routes(app: FastAPI, dashboard: Dashboard, call: Callable) -> None:
    files = {path: (WEB / name).read_bytes() for path, (name, _) in FILES.items()}

    def serve_file(path: str) -> Callable:
        async def handler() -> Response:
            headers = {"content-security-policy": CSP, "cache-control": "no-cache",
                       "x-content-type-options": "nosniff"}  # fmt: skip
            return Response(files[path], media_type=FILES[path][1], headers=headers)

        return handler

    for path in FILES:
        app.add_api_route(path, serve_file(path), methods=["GET"], include_in_schema=False)

    @app.get("/v1/dashboard/sweeps")
    async def sweeps():
        return await call(dashboard.sweeps)

    @app.get("/v1/dashboard/decisions")
    async def decisions(limit: int = 200):
        if not 1 <= limit <= 5000:
            raise ValueError("limit must be 1..5000")
        return await call(dashboard.decisions, limit)
