"""OpenTelemetry bridge, both ways: OTel spans into Prefactor runs
(``PrefactorSpanProcessor``), and Prefactor spans out to an OTel span processor
(``OtelSpanMirror``).

Both need the ``otel`` extra (``pip install 'prefactor-core[otel]'``); they are imported
on first use, so importing this package (and the attribute mapping in
:mod:`prefactor_core.otel._mapping`, which the server shares) never imports
``opentelemetry``.

Example::

    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from prefactor_core.otel import OtelSpanMirror, PrefactorSpanProcessor

    provider = TracerProvider()
    provider.add_span_processor(PrefactorSpanProcessor(client))

    mirror = OtelSpanMirror(client, BatchSpanProcessor(OTLPSpanExporter()))
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prefactor_core.otel._mirror import OtelSpanMirror
    from prefactor_core.otel._processor import PrefactorSpanProcessor

__all__ = ["OtelSpanMirror", "PrefactorSpanProcessor"]


def __getattr__(name: str) -> Any:
    if name == "PrefactorSpanProcessor":
        from prefactor_core.otel._processor import PrefactorSpanProcessor

        return PrefactorSpanProcessor
    if name == "OtelSpanMirror":
        from prefactor_core.otel._mirror import OtelSpanMirror

        return OtelSpanMirror
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
