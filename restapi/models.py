"""``/v1/models``: the registry's versions, and switching the one that serves."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from auscult.errors import NotFoundError
from auscult.registry import Registry
from auscult.service import Service
from restapi.deps import get_service, require_key
from restapi.problems import PROBLEM_RESPONSES, problem_schema

__all__ = ["router"]

router = APIRouter(prefix="/v1/models", tags=["model"], dependencies=[Depends(require_key)])


class VersionOut(BaseModel):
    """One registered model version, with the figures of its card."""

    version: str
    active: bool
    trained: str = Field(description="when it was trained (UTC)")
    test_auc: float | None
    test_sensitivity: float | None
    test_specificity: float | None
    lodo_mean_auc: float | None


class Switch(BaseModel):
    """Which version serves from now on, and why (kept in the registry's log)."""

    version: str = Field(min_length=1, max_length=100)
    why: str = Field(default="", max_length=500)


def _versions(registry: Registry) -> list[VersionOut]:
    active = registry.active_name()
    out = []
    for v in registry.versions():
        test = v.card.metrics.test or {}
        out.append(
            VersionOut(
                version=v.name,
                active=v.name == active,
                trained=v.card.training.date,
                test_auc=test.get("auc"),
                test_sensitivity=test.get("sensitivity"),
                test_specificity=test.get("specificity"),
                lodo_mean_auc=v.card.metrics.lodo.mean_auc,
            )
        )
    return out


@router.get("", response_model=list[VersionOut], responses=PROBLEM_RESPONSES, summary="List")
def list_versions(service: Annotated[Service, Depends(get_service)]) -> list[VersionOut]:
    """Every registered version, oldest first; the committed model is the first."""
    registry = Registry(service.settings)
    registry.ensure()
    return _versions(registry)


@router.put(
    "/active",
    response_model=list[VersionOut],
    responses={404: problem_schema("no such version"), **PROBLEM_RESPONSES},
    summary="Promote or roll back",
)
def switch(body: Switch, service: Annotated[Service, Depends(get_service)]) -> list[VersionOut]:
    """Serve ``version`` from the next analysis on, in the app, the worker and the API."""
    registry = Registry(service.settings)
    registry.ensure()
    if body.version not in {v.name for v in registry.versions()}:
        raise NotFoundError(f"no model version {body.version!r} in the registry")
    registry.promote(body.version, by="api", why=body.why)
    return _versions(registry)
