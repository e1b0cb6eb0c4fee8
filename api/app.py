"""The FastAPI application: settings, database, allocation cache, access control and routes."""

import asyncio
import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api import metrics
from api.cache import AllocationCache, Refresher
from api.errors import install_error_handlers
from api.experiments import router as experiments_router
from api.fastpath import AllocationApp
from api.fastpost import FastPost
from api.logs import RequestId
from api.middleware import AccessPolicy, LimitBodySize, RequireApiKey
from api.openapi import install_openapi
from api.ops import router as ops_router
from api.pages import Pages
from api.routes import NO_KEYS_WARNING, router
from api.serving import router as serving_router
from core.db import named
from core.migrations import open_database
from core.secrets import ApiKeys, load_api_keys
from core.settings import API_KEYS_VARIABLE, Settings, SettingsError, load_settings
from ingest.writer_process import writes_for

log = logging.getLogger("bandit.api")


@asynccontextmanager
async def lifespan(app: FastAPI):
    settings: Settings = app.state.settings
    if not app.state.access.enabled:
        log.warning(NO_KEYS_WARNING)
    open_database(settings.database)
    app.state.writes.start(asyncio.get_running_loop())
    # The first load runs in the refresher, so the port is bound while it reads (seconds
    # at 200,000 experiments); reads of the cache wait for it (see api/routes.py).
    refresher = Refresher(app.state.cache, settings.server.refresh_ms / 1000)
    refresher.start()
    log.info("loading the served splits from the %s", named(settings.database))
    yield
    refresher.stop()
    app.state.writes.close()
    metrics.HELD.fold()  # the last answers' counts, before another worker's scrape misses them


def access_policy(settings: Settings, keys: ApiKeys) -> AccessPolicy:
    if settings.auth.require_key_for_reads and not keys:
        raise SettingsError(f"auth.require_key_for_reads is true but {API_KEYS_VARIABLE} is empty")
    return AccessPolicy(keys, settings.auth.require_key_for_reads)


def install_observability(app: FastAPI) -> None:
    """Outermost: every answer, a 401 or 413 too, is counted and carries its request id."""
    enabled = app.state.settings.server.metrics
    metrics.set_enabled(enabled)
    if enabled:
        app.add_middleware(metrics.HttpMetrics, routes_of=app)
    app.add_middleware(RequestId)


def create_app(settings: Settings | None = None, api_keys: ApiKeys | None = None) -> FastAPI:
    """The app; keys come from the environment unless given (tests pass them)."""
    app = AllocationApp(
        title="bandit-api",
        version="1.0.0",
        lifespan=lifespan,
        docs_url=None,  # api/openapi.py serves /docs and /redoc without a CDN
        redoc_url=None,
        description="Thompson Sampling traffic splits, computed nightly, served from memory.",
    )
    app.state.settings = settings or load_settings()
    app.state.access = access_policy(
        app.state.settings, load_api_keys() if api_keys is None else api_keys
    )
    app.state.cache = AllocationCache()
    app.state.writes = writes_for(app.state.settings)
    install_error_handlers(app)
    # No redirect for a trailing slash: Starlette builds it from the Host header.
    app.router.redirect_slashes = False
    app.include_router(router)
    app.include_router(experiments_router)
    app.include_router(serving_router)
    app.include_router(ops_router)
    # Added last = runs first: a request without a key is refused before its body is read,
    # and the pages (for browsers) come after both.
    app.add_middleware(Pages, settings=app.state.settings)
    app.add_middleware(LimitBodySize, max_body_bytes=app.state.settings.server.max_body_bytes)
    app.add_middleware(RequireApiKey, policy=app.state.access)
    install_observability(app)
    install_openapi(app)
    app.fast_post = FastPost(app)
    return app
