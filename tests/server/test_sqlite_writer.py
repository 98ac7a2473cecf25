"""SQLite's writer thread lets go of each write job before it wakes the job's caller: what
a job holds (a bulk request's items, an OTLP export's rows) is freed by its caller, not
kept alive on the writer thread until the next write comes and freed there, in that
write's critical path. (It also drops the job's result, or its exception, right after
handing it over; the caller may wake first, so that is not asserted here, and a failed
job's traceback keeps the job for as long as its caller keeps the exception.)"""

from __future__ import annotations

import weakref
from pathlib import Path

from prefactor_server.settings import Settings
from prefactor_server.storage.base import WriteSession
from prefactor_server.storage.open import open_storage


class _Held:
    """Something a job holds."""


async def test_the_writer_keeps_no_job_once_it_has_run(tmp_path: Path) -> None:
    storage = open_storage(Settings.from_env({}, db_path=tmp_path / "writer.db"))
    try:
        held = _Held()
        ref = weakref.ref(held)

        def job(session: WriteSession, held: _Held = held) -> int:
            return 1

        assert await storage.write(job) == 1
        del job, held
        # No other write came: only the writer thread could still hold it.
        assert ref() is None
    finally:
        storage.close()
