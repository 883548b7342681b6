"""The FastAPI application: ``create_app(settings, engine=None)``.

The lifespan builds the store, the engine (unless one is passed), the RunService, the batcher
and the label verifier, and keeps them on ``app.state.service``; a model is warmed up in the background and
/readyz turns 200 once it is. Nothing lives at module level, so several apps (tests, replicas)
can share one process.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

import sigreward
from sigreward.api import openrlhf, ops, rewards, runs, significance, ui
from sigreward.api.auth import open_paths
from sigreward.api.errors import install_error_handlers
from sigreward.api.middleware import ServiceMiddleware
from sigreward.api.state import ServiceState
from sigreward.batching import Batcher
from sigreward.domain.runs import RunService
from sigreward.domain.verify import LabelVerifier
from sigreward.metrics import Metrics
from sigreward.settings import Settings
from sigreward.store import make_store

if TYPE_CHECKING:  # the engine package imports torch; build_engine imports it when called
    from sigreward.engine import Engine

logger = logging.getLogger("sigreward.api")


def build_engine(settings: Settings) -> Engine:
    """The SignificanceEngine for ``settings`` (values only when no model is configured).

    Raises ``sigreward.engine.ModelLoadError`` when the checkpoint cannot be loaded.
    """
    from sigreward.engine import SignificanceEngine

    return SignificanceEngine(
        settings.model,
        device=settings.device,
        dtype=settings.dtype,
        max_batch_tokens=settings.max_batch_tokens,
    )


async def _warm_up(state: ServiceState, engine: Engine) -> None:
    try:
        await asyncio.to_thread(engine.warmup)
    except Exception:
        logger.exception("model warm-up failed; /readyz stays 503")
        return
    if not state.draining:
        state.ready = True
        state.metrics.ready.set(1)
        logger.info("model warmed up; ready")


def _lifespan(state: ServiceState) -> Any:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings = state.settings
        state.store = await asyncio.to_thread(make_store, settings)
        try:
            engine = state.engine
            if engine is None:
                engine = state.engine = await asyncio.to_thread(build_engine, settings)
            state.runs = RunService(
                state.store, engine.has_model, on_k_warning=state.metrics.k_warning
            )
            state.verifier = LabelVerifier()
            state.batcher = Batcher(
                engine, settings.max_batch_tokens, settings.max_queue_tokens, state.metrics
            )
            state.batcher.start()
            if engine.has_model:
                state.warmup_task = asyncio.create_task(_warm_up(state, engine))
            else:
                state.ready = True
                state.metrics.ready.set(1)
            yield
        finally:
            state.ready = False
            state.metrics.ready.set(0)
            if state.warmup_task is not None and not state.warmup_task.done():
                state.warmup_task.cancel()
            if state.batcher is not None:
                await state.batcher.stop()
            state.json_parser.close()
            if state.verifier is not None:
                await asyncio.to_thread(state.verifier.close)
            await asyncio.to_thread(state.store.close)

    return lifespan


def _custom_openapi(app: FastAPI, settings: Settings) -> Any:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        if settings.api_keys:
            schema.setdefault("components", {}).setdefault("securitySchemes", {})["bearerAuth"] = {
                "type": "http",
                "scheme": "bearer",
            }
            unauthenticated = open_paths(settings.metrics_open)
            for path, operations in schema.get("paths", {}).items():
                if path in unauthenticated:
                    continue
                for operation in operations.values():
                    operation["security"] = [{"bearerAuth": []}]
        app.openapi_schema = schema
        return schema

    return openapi


def create_app(settings: Settings, engine: Engine | None = None) -> FastAPI:
    """The HTTP service for ``settings``; ``engine`` overrides the one built from settings."""
    state = ServiceState(settings=settings, metrics=Metrics(), engine=engine)
    app = FastAPI(
        title="sigreward",
        version=sigreward.__version__,
        description=(
            "Significance-weighted length rewards for RL on reasoning LLMs (arXiv 2506.08125). "
            'Every 4xx/5xx answer is the envelope {"error": {"type", "message", "param"}}.'
        ),
        lifespan=_lifespan(state),
    )
    app.state.service = state
    for module in (ops, runs, rewards, significance, openrlhf, ui):
        _include(app, module.router)
    install_error_handlers(app)
    app.add_middleware(ServiceMiddleware, state=state, router=app.router)
    app.openapi = _custom_openapi(app, settings)  # type: ignore[method-assign]
    return app


def _include(app: FastAPI, router: Any) -> None:
    app.include_router(router)
