"""Keeping Python's cyclic garbage collector off a long backlog of queued operations.

Every queued operation is a container the cyclic collector tracks. While a backlog
builds (the API is slow or down, or the agent outruns delivery), those objects survive
into the oldest generation, and each full collection walks all of them: at 300,000
queued spans one full collection holds the agent's thread for over 100 ms, and they come
every few tens of thousands of spans. ``gc.freeze()`` moves everything the collector
tracks into a permanent generation it never scans (in O(1)); objects in it are still
freed by reference counting the moment they are no longer used, so a delivered operation
goes away as before.

A queue holds a freeze from its first long backlog until it is closed, not merely until
the backlog has drained. Letting go at the drain would cost one long stall: ``gc.unfreeze()``
puts the whole frozen heap (the interpreter's modules, the agent's objects, not the
delivered operations, which are gone) back into the oldest generation, and because the
collector sized its next full collection while almost everything was frozen, that
collection comes at once and walks all of it (30-40 ms of the agent's thread for a
modest process, measured in the benchmarks' section 8). Kept frozen, the long-lived heap
stays out of every later collection, as in processes that freeze at start-up. The price:
reference cycles among objects that were frozen (garbage at a freeze, or alive then and
cyclic garbage later) are only collected after the thaw at close; reference counting
frees everything else. ``freeze_step=0`` on the queue turns all of this off.

The freeze ends (``gc.unfreeze()``) when every queue of the process that held one has
closed. A process whose own code already uses ``gc.freeze()`` (a pre-fork server, for
instance) is left alone: if anything is frozen when a queue first wants to freeze, the
queues never freeze nor unfreeze in that process. (Objects a process freezes while a
queue holds a freeze are unfrozen with the queue's: freeze at start-up, as pre-fork
servers do, before any backlog.)
"""

from __future__ import annotations

import gc
import threading

__all__ = ["hold", "release"]

_lock = threading.Lock()
_holders: set[int] = set()
_foreign = False  # the process freezes on its own: stay out of it


def hold(holder: int) -> bool:
    """Freeze what the collector tracks now, on behalf of ``holder`` (an ``id()``).

    Returns:
        False if freezing is left to the process (its own code froze objects first) or
        the collector is disabled.
    """
    global _foreign
    with _lock:
        if _foreign or not gc.isenabled():
            return False
        if not _holders and gc.get_freeze_count():
            _foreign = True
            return False
        gc.freeze()
        _holders.add(holder)
        return True


def release(holder: int) -> None:
    """``holder`` has closed and no longer needs a freeze; unfreeze when no one does."""
    with _lock:
        if holder not in _holders:
            return
        _holders.discard(holder)
        if not _holders:
            gc.unfreeze()
