"""``BulkClient`` (published import path ``prefactor_http.endpoints.bulk``)."""

from __future__ import annotations

from prefactor_http._resources.bulk import BulkClient

__all__ = ["BulkClient"]
