"""The ``/api/v1`` routes, one module per resource."""

from __future__ import annotations

from fastapi import APIRouter

from prefactor_server.api import agent_instances, agent_spans, agents, bulk, ping

__all__ = ["API_PREFIX", "build_router"]

API_PREFIX = "/api/v1"


def build_router() -> APIRouter:
    """Return a router with every API route under ``/api/v1``."""
    router = APIRouter(prefix=API_PREFIX)
    for module in (ping, agent_instances, agent_spans, agents, bulk):
        router.include_router(module.router)
    return router
