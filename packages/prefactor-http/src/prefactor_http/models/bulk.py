"""Models of the bulk endpoint (wire protocol section 5)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["BulkItem", "BulkOutput", "BulkRequest", "BulkResponse"]


class BulkItem(BaseModel):
    """One action of a bulk request; any extra fields are the action's parameters.

    The action name is sent as ``_type``; build the item with ``_type=`` (or ``type=``).

    Example:
        >>> item = BulkItem.model_validate({"_type": "agent_instances/start",
        ...     "idempotency_key": "start-0001", "agent_instance_id": "ins_1"})
        >>> item.model_dump(by_alias=True)["_type"]
        'agent_instances/start'
    """

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    type: str = Field(alias="_type")
    idempotency_key: str = Field(min_length=8, max_length=64)


class BulkRequest(BaseModel):
    """A bulk request: one or more items whose idempotency keys are unique.

    Example:
        >>> request = BulkRequest(items=[BulkItem.model_validate(
        ...     {"_type": "agents/show", "idempotency_key": "show-0001", "agent_id": "a"})])
        >>> len(request.items)
        1
    """

    items: list[BulkItem] = Field(min_length=1)

    @field_validator("items")
    @classmethod
    def validate_unique_idempotency_keys(cls, items: list[BulkItem]) -> list[BulkItem]:
        """Reject a request in which two items share an idempotency key."""
        seen: set[str] = set()
        for item in items:
            if item.idempotency_key in seen:
                raise ValueError(
                    "All idempotency keys must be unique within the request "
                    f"({item.idempotency_key!r} is repeated)"
                )
            seen.add(item.idempotency_key)
        return items


class BulkOutput(BaseModel):
    """The result of one bulk item: the single endpoint's body, or an error envelope.

    Example:
        >>> out = BulkOutput.model_validate({"status": "error", "code": "not_found",
        ...     "message": "gone"})
        >>> out.model_extra["code"]
        'not_found'
    """

    model_config = ConfigDict(extra="allow")

    # A Literal is checked in pydantic-core, which keeps parsing large bulk responses cheap.
    status: Literal["success", "error"]


class BulkResponse(BaseModel):
    """The bulk response: outputs keyed by each item's idempotency key.

    Items after the first failing one are absent from ``outputs``.

    Example:
        >>> BulkResponse.model_validate({"outputs": {"k-000001": {"status": "success"}}}
        ...     ).outputs["k-000001"].status
        'success'
    """

    status: str = "success"
    outputs: dict[str, BulkOutput]
