"""The read-only pages: `/` (every experiment), `/experiments/{id}` and `/runs`.

`Pages` sits in front of the routes and answers a GET of one of these paths with HTML only
when the request's Accept header prefers text/html (a browser); every other request, curl's
`*/*` included, goes on to the API untouched, so its JSON answers stay byte for byte what
they were. It runs inside the key middleware: when reads need a key, so do the pages.
"""

from datetime import UTC, datetime
from urllib.parse import parse_qs, urlencode

from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers

from api.accept import preferred
from api.charts import split_bar
from api.experiment_page import experiment_page
from api.html import cell, esc, experiment_href, layout, number, percent, table
from core.db import database
from core.experiments import UnknownExperiment
from core.overview import experiments_page, recent_runs

HTML_OR_JSON = ["application/json", "text/html"]
PAGE_SIZE = 50
# A cache between client and server must not hand the page to curl, or the JSON to a browser.
VARY = {"Vary": "Accept"}


def page_for(path: str) -> tuple[str, str | None] | None:
    """(page, experiment id) for a page path, else None."""
    if path in ("/", "/runs"):
        return ("list" if path == "/" else "runs"), None
    parts = path.split("/")
    if len(parts) == 3 and parts[1] == "experiments" and parts[2]:
        return "experiment", parts[2]
    return None


def wants_html(scope) -> bool:
    return preferred(Headers(scope=scope).get("accept"), HTML_OR_JSON) == "text/html"


class Pages:
    """ASGI middleware: pages for browsers, everything else to the app (see the module)."""

    def __init__(self, app, settings):
        self.app = app
        self.settings = settings

    async def __call__(self, scope, receive, send):
        page = None
        if scope["type"] == "http" and scope["method"] == "GET":
            page = page_for(scope["path"])
        if page is None or not wants_html(scope):
            await self.app(scope, receive, send)
            return
        params = parse_qs(scope["query_string"].decode("latin-1"))
        response = await run_in_threadpool(self.render, *page, params)
        await response(scope, receive, send)

    def render(self, kind: str, experiment_id: str | None, params: dict) -> HTMLResponse:
        now = datetime.now(UTC)
        try:
            with database.connection_context():
                if kind == "experiment":
                    html = experiment_page(experiment_id, self.settings, now)
                elif kind == "runs":
                    html = runs_page()
                else:
                    html = list_page(params, self.settings, now)
        except UnknownExperiment as exc:
            body = f"<h1>Not found</h1><p>{esc(exc)}</p><p><a href='/'>All experiments</a></p>"
            return HTMLResponse(layout("Not found", body), 404, headers=VARY)
        return HTMLResponse(html, headers=VARY)


# --- the list of experiments -----------------------------------------------------------


def page_number(params: dict) -> int:
    text = (params.get("page") or ["1"])[0]
    return max(1, min(int(text), 10**6)) if text.isdigit() else 1


def list_page(params: dict, settings, now: datetime) -> str:
    search = (params.get("q") or [""])[0].strip()[:200]
    page = page_number(params)
    total, glances = experiments_page(search, PAGE_SIZE, (page - 1) * PAGE_SIZE, settings, now)
    rows = [glance_row(g) for g in glances]
    found = f"{total:,} experiment{'s' if total != 1 else ''}"
    if search:
        found += f" matching “{esc(search)}”"
    body = (
        "<h1>Experiments</h1>"
        '<form method="get" action="/"><input id="search" name="q" type="search" '
        f'placeholder="Search experiments by id" value="{esc(search)}"> '
        f'<button type="submit">Search</button></form><p class="muted">{found}</p>'
        + table(
            ["Experiment", "Status", "Leader", "P(best)", "Days", "Today's split", "Warnings"],
            rows,
            "experiments",
        )
        + pager(search, page, total)
    )
    return layout("Experiments", body)


def glance_row(g) -> str:
    link = f'<td><a href="{esc(experiment_href(g.experiment_id))}">{esc(g.experiment_id)}</a></td>'
    bar = split_bar(list(g.today.items())) if g.today else '<span class="muted">none</span>'
    warnings = "; ".join(g.warnings)
    return (
        f"<tr>{link}<td><span class='status'>{esc(g.status)}</span></td>{cell(g.leader or '–')}"
        f"{cell(percent(g.probability_best), True)}{cell(g.days_running, True)}<td>{bar}</td>"
        f'<td class="warn">{esc(warnings)}</td></tr>'
    )


def pager(search: str, page: int, total: int) -> str:
    pages = max(1, -(-total // PAGE_SIZE))
    links = []
    for label, target in (("← previous", page - 1), ("next →", page + 1)):
        if 1 <= target <= pages:
            query = urlencode({"q": search, "page": target} if search else {"page": target})
            links.append(f'<a href="/?{esc(query)}">{label}</a>')
    return f"<p>Page {page} of {pages} {' · '.join(links)}</p>"


# --- runs --------------------------------------------------------------------------------


def runs_page() -> str:
    runs = recent_runs()
    rows = [run_tr(r) for r in runs]
    failed = sum(r["status"] == "failed" for r in runs)
    intro = f"<p>The latest {len(runs)} runs; {failed} failed (listed first).</p>"
    headers = ["Run", "Trigger", "For", "Experiment", "Status", "Started", "Took", "Processed"]
    return layout("Runs", "<h1>Runs</h1>" + intro + table([*headers, "Error"], rows, "runs"))


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:,.1f} s"


def run_tr(r: dict) -> str:
    took = duration(r["seconds"])
    started = r["started_at"].strftime("%Y-%m-%d %H:%M:%S")
    css = ' class="fail"' if r["status"] == "failed" else ""
    return (
        f"<tr{css}>{cell(r['run_id'], True)}{cell(r['trigger'])}{cell(r['effective_date'])}"
        f"{cell(r['experiment_id'] or 'all')}{cell(r['status'])}{cell(started + ' UTC')}"
        f"{cell(took, True)}{cell(number(r['experiments_processed']), True)}"
        f"{cell(r['error'] or '')}</tr>"
    )
