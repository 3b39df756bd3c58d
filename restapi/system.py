"""``/health``, ``/health/ready``, ``/metrics`` and ``/v1/model``."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from auscult.model_card import load_card
from auscult.registry import Registry
from auscult.service import Service
from restapi.deps import get_service, require_key
from restapi.problems import PROBLEM_RESPONSES, problem_schema
from restapi.schemas import HealthOut, ModelOut

__all__ = ["router"]

router = APIRouter(tags=["system"])


def _health(request: Request, service: Service) -> HealthOut:
    return HealthOut(
        status="ok",
        ready=service.model_loaded,
        model_version=service.analyzer.runner.version if service.model_loaded else None,
        uptime_s=round(time.time() - request.app.state.telemetry.started, 1),
        queue_depth=request.app.state.queue_depth(),
    )


@router.get("/health", response_model=HealthOut, summary="Liveness (always 200 while up)")
def health(request: Request, service: Annotated[Service, Depends(get_service)]) -> HealthOut:
    return _health(request, service)


@router.get(
    "/health/ready",
    response_model=HealthOut,
    responses={503: problem_schema("the model is not loaded (yet)")},
    summary="Readiness: 200 once the model is loaded",
)
def ready(request: Request, service: Annotated[Service, Depends(get_service)]) -> HealthOut:
    service.analyzer  # noqa: B018 - loads it, or raises ModelNotFoundError (503)
    return _health(request, service)


@router.get(
    "/metrics",
    dependencies=[Depends(require_key)],
    response_class=Response,
    responses={
        200: {"content": {"text/plain": {}}, "description": "Prometheus text format"},
        **PROBLEM_RESPONSES,
    },
    summary="Prometheus metrics",
)
def metrics(request: Request) -> Response:
    return request.app.state.telemetry.response()


@router.get(
    "/v1/model",
    response_model=ModelOut,
    dependencies=[Depends(require_key)],
    responses=PROBLEM_RESPONSES,
    tags=["model"],
    summary="The model card",
)
def model(service: Annotated[Service, Depends(get_service)]) -> ModelOut:
    """The card of the model serving now (the registry's active version)."""
    active = Registry(service.settings).active()
    data = load_card(service.settings, active.metadata_path).to_dict()  # not found → 503
    return ModelOut(**{k: v for k, v in data.items() if k in ModelOut.model_fields})
