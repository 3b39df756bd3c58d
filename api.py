"""Auscult REST API: analyse heart sounds, read the history and the model card over HTTP.

    python api.py                          # 127.0.0.1:8000, with its own analysis worker
    AUSCULT_API_KEY=... python api.py --host 0.0.0.0     # beyond loopback a key is required
    python launcher.py                     # starts it with the analyzer and the phone page

OpenAPI at ``/docs``. Routes: ``POST /v1/analyses`` (one recording, multipart or raw body),
``POST /v1/analyses/batch`` (many, NDJSON streamed), ``GET /v1/analyses`` (history),
``GET|DELETE /v1/analyses/{id}``, ``GET /v1/analyses/{id}/audio``, ``GET /v1/model``,
``GET /health``, ``GET /health/ready``, ``GET /metrics``. Errors are
``application/problem+json`` with a message a clinician can act on.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import sys
import threading
from contextlib import asynccontextmanager

from fastapi import FastAPI

from auscult.service import Service
from auscult.worker import Worker
from config import Settings, get_settings
from restapi import analyses, ecg, exams, models, problems, retraining, system, training_data
from restapi.deps import AnalysisSlots
from restapi.schemas import Problem
from restapi.telemetry import Telemetry

__all__ = ["create_app", "main"]

log = logging.getLogger(__name__)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def create_app(
    settings: Settings | None = None,
    service: Service | None = None,
    *,
    host: str | None = None,
    start_worker: bool = False,
) -> FastAPI:
    """The API app. ``start_worker`` runs the analysis worker in this process (API alone)."""
    s = settings or get_settings()
    bind = host or s.api_host
    if not is_loopback(bind) and not s.api_key:
        raise SystemExit(
            f"the API would listen on {bind} without a key; set AUSCULT_API_KEY (clients send "
            "it in X-API-Key) or bind to 127.0.0.1"
        )
    svc = service or Service(s)
    slots = AnalysisSlots(s.api_workers, s.api_queue_s)

    def queue_depth() -> int:
        return svc.store.count(status="pending")

    telemetry = Telemetry(queue_depth=queue_depth, in_flight=lambda: slots.in_flight)
    stop = threading.Event()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if start_worker:
            Worker(svc).start_thread(stop)
        try:  # load the model at start: the first request must not pay for it
            telemetry.model.labels(svc.analyzer.runner.version).set(1)
        except Exception as exc:  # the API still answers /health and says why
            log.error("model not loaded: %s", exc)
        yield
        stop.set()

    app = FastAPI(
        title="Auscult API",
        version="1",
        summary="Heart-sound analysis: decision support, not a diagnosis.",
        lifespan=lifespan,
    )
    app.state.settings = s
    app.state.service = svc
    app.state.slots = slots
    app.state.telemetry = telemetry
    app.state.queue_depth = queue_depth
    telemetry.install(app)
    problems.install(app)
    app.include_router(analyses.router)
    app.include_router(exams.router)
    app.include_router(ecg.router)
    app.include_router(models.router)
    app.include_router(training_data.router)
    app.include_router(retraining.router)
    app.include_router(system.router)

    def openapi() -> dict:
        if app.openapi_schema is None:
            from fastapi.openapi.utils import get_openapi

            schema = get_openapi(
                title=app.title, version=app.version, summary=app.summary, routes=app.routes
            )
            schema.setdefault("components", {}).setdefault("schemas", {})["Problem"] = (
                Problem.model_json_schema()
            )
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def main(argv: list[str] | None = None) -> int:
    import serving

    s = get_settings()
    p = argparse.ArgumentParser(description="Auscult REST API.")
    p.add_argument("--host", default=s.api_host)
    p.add_argument("--port", type=int, default=s.api_port)
    p.add_argument(
        "--no-worker",
        action="store_true",
        help="do not analyse queued recordings here (the launcher runs its own worker)",
    )
    args = p.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    app = create_app(s, host=args.host, start_worker=not args.no_worker)
    log.info("Auscult API on http://%s:%d (docs: /docs)", args.host, args.port)
    serving.run(app, args.host, args.port, log_level="warning")
    return 0


if __name__ == "__main__":
    sys.exit(main())
