"""The operations console: server-rendered pages at /console over the same read models and write
path as the API, with its scripts, styles, charts and map shapes shipped in the package (no CDN)."""

from __future__ import annotations

import importlib
import pkgutil
from importlib.resources import files

from fastapi import FastAPI, Request
from starlette.responses import RedirectResponse, Response
from starlette.staticfiles import StaticFiles

from crossdock.console import pages, session
from crossdock.console.web import PREFIX, ActionRefused, NotAllowed, SignInNeeded, render, sign_in_redirect


def install(app: FastAPI) -> None:
    app.mount(f"{PREFIX}/static", StaticFiles(directory=str(files("crossdock.console") / "static")), "console-static")
    app.include_router(session.router)
    # Every module of console.pages is a page with its own router.
    for info in pkgutil.iter_modules(pages.__path__):
        app.include_router(importlib.import_module(f"{pages.__name__}.{info.name}").router)

    @app.get(PREFIX, include_in_schema=False)
    async def console_root() -> Response:
        return RedirectResponse(f"{PREFIX}/", status_code=308)

    @app.exception_handler(SignInNeeded)
    async def sign_in(request: Request, exc: SignInNeeded) -> Response:
        return sign_in_redirect(request)

    @app.exception_handler(NotAllowed)
    async def not_allowed(request: Request, exc: NotAllowed) -> Response:
        return render(request, "refused.html", None, status=403, reason=str(exc))

    @app.exception_handler(ActionRefused)
    async def refused(request: Request, exc: ActionRefused) -> Response:
        # Whatever the action meant to replace, the reason goes to the page's flash area.
        response = render(request, "flash.html", None, status=exc.status, ok=False, message=str(exc))
        response.headers.update({"HX-Retarget": "#flash", "HX-Reswap": "innerHTML"})
        return response
