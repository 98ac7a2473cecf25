"""The HTTP client (published import path ``prefactor_http.client``)."""

from __future__ import annotations

from prefactor_http._client import DEFAULT_SDK_HEADER, ClientState, PrefactorHttpClient

__all__ = ["DEFAULT_SDK_HEADER", "ClientState", "PrefactorHttpClient"]
