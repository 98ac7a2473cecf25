"""Reading runs back: the read-API client, the span tree, and its terminal rendering.

Shared by ``prefactor traces``, ``prefactor demo`` and the web viewer, so the three show
a run the same way. Nothing here writes.
"""

from prefactor_server.traces.reader import (
    NotFoundError,
    ServerUnreachableError,
    TraceReader,
    TraceReaderError,
    UnauthorizedError,
)
from prefactor_server.traces.tree import (
    SpanNode,
    build_tree,
    duration_seconds,
    format_duration,
    span_error,
    walk,
)

__all__ = [
    "NotFoundError",
    "ServerUnreachableError",
    "SpanNode",
    "TraceReader",
    "TraceReaderError",
    "UnauthorizedError",
    "build_tree",
    "duration_seconds",
    "format_duration",
    "span_error",
    "walk",
]
