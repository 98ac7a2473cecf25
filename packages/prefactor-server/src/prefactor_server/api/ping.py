"""``GET /api/v1/ping`` (token check plus capabilities) and ``GET /api/v1/account``."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from prefactor_server.api._common import CurrentAccount, json_response, settings
from prefactor_server.domain.actions import BULK_ACTIONS
from prefactor_server.domain.resources import account_resource

__all__ = ["router"]

router = APIRouter(tags=["account"])


@router.get("/ping", summary="Check the token; announce the server's capabilities")
async def ping(request: Request, account: CurrentAccount) -> Response:
    """Answer with the account and the ``capabilities`` our SDK reads (ARCHITECTURE.md)."""
    config = settings(request)
    return json_response(
        {
            "status": "success",
            "details": {"type": "account", "id": account.id, "name": account.name},
            "capabilities": {
                "bulk_actions": list(BULK_ACTIONS),
                "bulk_max_items": config.bulk_max_items,
                "bulk_max_bytes": config.max_body_bytes,
                "pfid_partition": account.partition,
                "client_ids": True,
            },
        }
    )


@router.get("/account", summary="The token's account")
async def get_account(account: CurrentAccount) -> Response:
    """Answer with the account resource."""
    return json_response({"status": "success", "details": account_resource(account)})
