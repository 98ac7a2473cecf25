"""The garbage collector's settings for a long-running server process (``prefactor serve``).

Python's defaults suit short scripts: a young collection every 700 new containers, and a
full collection, walking every object, whenever enough have survived two younger ones.
Under ingest that cost the server ~10 µs of CPU per OTLP span (``benchmarks/otlp_cpu.py``,
``benchmarks.otel``), and it is the process's choice, not the app's:
:func:`tune_gc_for_serving` is called by the CLI (and by the benchmarks that stand in for
it), never by ``create_app``, which embedders and tests run inside their own processes.
"""

from __future__ import annotations

import gc

__all__ = ["tune_gc_for_serving"]

# Young collections every this many new containers (Python's default: 700). An OTLP export
# of 512 spans holds fewer at its peak, all freed by reference counting once answered: at
# 700, ~6 young and half an older collection ran per export (1.5-4 µs per span of CPU)
# and pushed its live objects towards the oldest generation; at 10,000, none ran in 24
# exports.
_YOUNG_THRESHOLD = 10_000


def tune_gc_for_serving() -> None:
    """Tune the collector for a long-running server: see ``_YOUNG_THRESHOLD``; and
    everything built so far (modules, the app, its routes and models: ~100,000 objects)
    lives as long as the process, so it is frozen (``gc.freeze``): a full collection no
    longer walks it (~50 ms of CPU each, every few exports: ~8 µs per OTLP span)."""
    gc.set_threshold(_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
    gc.freeze()
