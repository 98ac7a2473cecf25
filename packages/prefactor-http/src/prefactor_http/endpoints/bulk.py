"""``BulkClient`` (published import path ``prefactor_http.endpoints.bulk``,
with the models and the error it uses, importable from here as published)."""

from __future__ import annotations

from prefactor_http._resources.bulk import BulkClient
from prefactor_http.exceptions import PrefactorResponseContractError
from prefactor_http.models.bulk import BulkRequest, BulkResponse

__all__ = ["BulkClient", "BulkRequest", "BulkResponse", "PrefactorResponseContractError"]
