"""``client.bulk``: many actions in one ``POST /api/v1/bulk`` (spec section 5)."""

from __future__ import annotations

from typing import Any

from prefactor_http._resources._parsing import parse_model
from prefactor_http._types import Requester
from prefactor_http._validation import check_bulk_items
from prefactor_http.models.bulk import BulkRequest, BulkResponse

__all__ = ["BulkClient"]

_PATH = "/api/v1/bulk"


class BulkClient:
    """The bulk endpoint, reached as ``client.bulk``.

    Each item runs in its own transaction; processing stops at the first failing item,
    whose error is in ``outputs`` while later items are absent. Outputs are keyed by the
    items' idempotency keys (8–64 characters, unique in the request).

    Example:
        >>> request = BulkRequest(items=[BulkItem.model_validate({  # doctest: +SKIP
        ...     "_type": "agent_instances/start", "idempotency_key": "start-0001",
        ...     "agent_instance_id": "ins_1"})])
        >>> response = await client.bulk.execute(request)  # doctest: +SKIP
        >>> response.outputs["start-0001"].status  # doctest: +SKIP
        'success'
    """

    def __init__(self, http_client: Requester) -> None:
        self._requester = http_client

    async def execute(self, request: BulkRequest, *, retry: bool = True) -> BulkResponse:
        """Send a validated ``BulkRequest``.

        Args:
            request: The items; ``BulkRequest`` has already checked their keys.
            retry: Retry transient failures.

        Returns:
            The outputs keyed by idempotency key.

        Raises:
            PrefactorValidationError: When the API rejects the request as a whole.
            PrefactorHttpError: As described in ``prefactor_http.exceptions``.
        """
        return await self._post(request.model_dump(mode="json", by_alias=True), retry=retry)

    async def send_items(self, items: list[dict[str, Any]], *, retry: bool = True) -> BulkResponse:
        """Send raw item dicts as ``{"items": items}``: the SDK's cheap hot path.

        The items are not copied or turned into models; only their ``_type`` and keys are
        checked.

        Args:
            items: Dicts with ``_type``, ``idempotency_key`` and the action's fields.
            retry: Retry transient failures.

        Returns:
            The outputs keyed by idempotency key.

        Raises:
            ValueError: For no items, a missing ``_type``, or a key that is missing, not
                8–64 characters, or repeated (nothing is sent).
            PrefactorHttpError: As described in ``prefactor_http.exceptions``.
        """
        check_bulk_items(items)
        return await self._post({"items": items}, retry=retry)

    async def _post(self, body: dict[str, Any], *, retry: bool) -> BulkResponse:
        """Post an already checked bulk body and parse the response."""
        response = await self._requester.request("POST", _PATH, json_data=body, retry=retry)
        return parse_model(
            BulkResponse, response, operation="bulk.execute", method="POST", path=_PATH
        )
