"""The FastAPI application: settings, database, allocation cache and routes."""

import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api.cache import AllocationCache, Refresher
from api.errors import install_error_handlers
from api.policy_routes import router as policy_router
from api.routes import router
from core.db import init_database
from core.settings import Settings, load_settings

log = logging.getLogger("bandit.api")


@asynccontextmanager
async def lifespan(app: FastAPI):
    settings: Settings = app.state.settings
    init_database(settings.database)
    app.state.cache.refresh()
    refresher = Refresher(app.state.cache, settings.server.refresh_ms / 1000)
    refresher.start()
    log.info("serving %d experiments from %s", len(app.state.cache.bodies), settings.database.path)
    yield
    refresher.stop()


def create_app(settings: Settings | None = None) -> FastAPI:
    app = FastAPI(
        title="bandit-api",
        version="1.0.0",
        lifespan=lifespan,
        description="Thompson Sampling traffic splits, computed nightly, served from memory.",
    )
    app.state.settings = settings or load_settings()
    app.state.cache = AllocationCache()
    install_error_handlers(app)
    app.include_router(router)
    app.include_router(policy_router)
    return app
