"""The daemon's web page as a Starlette app: built from explicit parts, no globals.

Routes (interface.md, "The daemon's web page"): `/` the class overview (with the class's progress
board when students build the lab), `/labs/{name}` one lab, `/api/labs` every lab's latest audit as
the audit JSON, `/api/class` the class's grades as `auditor.grade/v1` (404 unless students build),
`/healthz` and `/metrics` for probes, and
`/static/live.js`, the one script, which refreshes a page in place. Pages reuse the HTML report's
templates; every value is autoescaped, and the Content-Security-Policy allows only this origin's
script and fetches.
"""

from __future__ import annotations

import json
from importlib.resources import files

from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from auditor.app.health import HealthCheck, Metrics
from auditor.report.html_report import render_page
from auditor.report.text import verdict_summary, when
from auditor.store import DatabaseUnavailable
from auditor.web.auth import TokenRequired
from auditor.web.view import ClassView

CSP = (
    "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'unsafe-inline'; "
    "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Always asked again, answered 304 while nothing changed (the page's ETag).
    "Cache-Control": "no-cache",
}


def create_app(
    view: ClassView,
    health: HealthCheck,
    metrics: Metrics,
    *,
    token: str | None,
    refresh_seconds: float = 5.0,
) -> Starlette:
    """The page; with a token, every route but /healthz and /metrics requires it."""
    script = files("auditor.web").joinpath("static/live.js").read_bytes()
    refresh_ms = int(refresh_seconds * 1000)

    def overview(request: Request) -> Response:
        now = view.now()
        version = view.version(now)
        if _unchanged(request, version):
            return _not_modified(version)
        report = view.overview(now)
        html = render_page(
            "live_overview.html.j2",
            report=report,
            board=view.board(now),
            now=now,
            summary=verdict_summary(report),
            title=f"Lab audit · {verdict_summary(report)}",
            refresh_ms=refresh_ms,
            etag=_etag(version),
        )
        return _page(html, version)

    def lab(request: Request) -> Response:
        name = request.path_params["name"]
        now = view.now()
        version = view.version(now)
        if _unchanged(request, version):
            return _not_modified(version)
        page = view.lab(name, now)
        if page is None:
            return PlainTextResponse(f"no lab named {name!r}\n", status_code=404, headers=PAGE_HEADERS)
        verdict = page.lab.verdict.value if page.lab.verdict else "not audited"
        html = render_page(
            "live_lab.html.j2",
            lab=page.lab,
            student=page.student,
            changes=page.changes,
            more_changes=page.more_changes,
            now=now,
            title=f"{name}{f' ({page.student})' if page.student else ''}: {verdict} · as of {when(now)}",
            refresh_ms=refresh_ms,
            etag=_etag(version),
        )
        return _page(html, version)

    def api_labs(request: Request) -> Response:
        return JSONResponse(view.latest_audits().to_json(), headers={"Cache-Control": "no-store"})

    def api_class(request: Request) -> Response:
        document = view.grade_document(view.now())
        if document is None:
            body = {"error": "no class to grade: the labs are built by the provisioner ([class] built_by)"}
            return JSONResponse(body, status_code=404, headers={"Cache-Control": "no-store"})
        return JSONResponse(document, headers={"Cache-Control": "no-store"})

    def healthz(request: Request) -> Response:
        healthy, detail = health()
        body = {"healthy": healthy, "last_cycle": detail}
        return JSONResponse(body, status_code=200 if healthy else 503)

    def metrics_endpoint(request: Request) -> Response:
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    def live_script(request: Request) -> Response:
        headers = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
        return Response(script, media_type="text/javascript", headers=headers)

    def database_away(request: Request, error: Exception) -> Response:
        body = json.dumps({"error": "the database is not reachable right now; retry shortly"})
        return Response(body, status_code=503, media_type="application/json", headers={"Retry-After": "5"})

    routes = [
        Route("/", overview),
        Route("/labs/{name:str}", lab),
        Route("/api/labs", api_labs),
        Route("/api/class", api_class),
        Route("/healthz", healthz),
        Route("/metrics", metrics_endpoint),
        Route("/static/live.js", live_script),
    ]
    middleware = [Middleware(TokenRequired, token=token)] if token else []
    return Starlette(
        routes=routes, middleware=middleware, exception_handlers={DatabaseUnavailable: database_away}
    )


def _etag(version: str) -> str:
    return f'"{version}"'


def _unchanged(request: Request, version: str) -> bool:
    return request.headers.get("if-none-match", "").strip().removeprefix("W/") == _etag(version)


def _not_modified(version: str) -> Response:
    return Response(status_code=304, headers={**PAGE_HEADERS, "ETag": _etag(version)})


def _page(html: str, version: str) -> Response:
    return Response(html, media_type="text/html", headers={**PAGE_HEADERS, "ETag": _etag(version)})
