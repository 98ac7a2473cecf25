"""Queue infrastructure: the queue interface, the in-memory queue and the spool, and
``TaskExecutor`` (a worker pool for user code; the SDK delivers through its dispatcher)."""

from prefactor_core.queue.base import Queue, QueueClosedError, QueueFullError
from prefactor_core.queue.executor import ExecutorStatistics, TaskExecutor
from prefactor_core.queue.memory import InMemoryQueue, QueueStatistics
from prefactor_core.queue.spool import SpoolLockedError, SpoolQueue

__all__ = [
    "ExecutorStatistics",
    "InMemoryQueue",
    "Queue",
    "QueueClosedError",
    "QueueFullError",
    "QueueStatistics",
    "SpoolLockedError",
    "SpoolQueue",
    "TaskExecutor",
]
