"""OpenTelemetry bridge: OTel spans into Prefactor runs.

``PrefactorSpanProcessor`` needs the ``otel`` extra (``pip install
'prefactor-core[otel]'``); it is imported on first use, so importing this package (and
the attribute mapping in :mod:`prefactor_core.otel._mapping`, which the server shares)
never imports ``opentelemetry``.

Example::

    from opentelemetry.sdk.trace import TracerProvider
    from prefactor_core.otel import PrefactorSpanProcessor

    provider = TracerProvider()
    provider.add_span_processor(PrefactorSpanProcessor(client))
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prefactor_core.otel._processor import PrefactorSpanProcessor

__all__ = ["PrefactorSpanProcessor"]


def __getattr__(name: str) -> Any:
    if name == "PrefactorSpanProcessor":
        from prefactor_core.otel._processor import PrefactorSpanProcessor

        return PrefactorSpanProcessor
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
