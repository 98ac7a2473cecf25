"""``POST /v1/traces``: OTLP/HTTP trace ingest (the path OTel exporters use by default).

Accepts ``application/x-protobuf`` and ``application/json`` (OTLP/JSON), optionally
gzip- or deflate-compressed (raw deflate streams too, and gzip bodies of several
members), authenticated with the account's bearer token (the exporters send it via
``OTEL_EXPORTER_OTLP_HEADERS``). The answer is an ``ExportTraceServiceResponse`` in the
request's encoding, with ``partial_success`` counting the spans that could not be used.

Durability and back-pressure: the answer is sent only once the export is committed, so an
exporter that got 200 never loses it. On a backend that keeps the OTLP journal (SQLite)
that is the export's body in the journal, its spans stored right after
(``otlp_journal.py``; reads wait for them); otherwise (PostgreSQL) the spans themselves.
When more than ``otlp_max_pending_spans`` spans are received but not yet stored, the
export is refused with 503 and ``Retry-After`` (the standard exporters retry it) instead
of being held in memory or dropped.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

import orjson
from fastapi import APIRouter, Request
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTracePartialSuccess,
    ExportTraceServiceResponse,
)
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from prefactor_server import _time
from prefactor_server.api._common import CurrentAccount, read_body, settings, storage
from prefactor_server.api.otlp_journal import PROTOBUF as _PROTOBUF
from prefactor_server.api.otlp_journal import Applier, Entry, PendingSpans
from prefactor_server.domain.context import WriteContext
from prefactor_server.domain.otlp_decode import Export, decode_json
from prefactor_server.domain.otlp_ingest import Outcome, PreparedTrace, prepare, split, store
from prefactor_server.domain.otlp_protobuf import Checked, check_protobuf, decode_protobuf
from prefactor_server.errors import ApiError
from prefactor_server.storage.base import Account, WriteSession
from prefactor_server.storage.journal import JournalSession

__all__ = ["PATH", "export_traces", "router"]

router = APIRouter(tags=["otlp"])

PATH = "/v1/traces"
"""The OTLP/HTTP exporters' default path for traces (answered by the lean routes too)."""

_JSON = "application/json"
_RETRY_AFTER_SECONDS = 1


def _pending(request: Request) -> PendingSpans:
    state = request.app.state
    pending: PendingSpans | None = getattr(state, "otlp_pending", None)
    if pending is None:
        pending = state.otlp_pending = PendingSpans()
    return pending


# zlib window bits to try for each accepted Content-Encoding, in order: gzip framing;
# "deflate" is zlib framing by the HTTP spec, but some clients send a raw deflate stream.
_WBITS = {"gzip": (16 + zlib.MAX_WBITS,), "deflate": (zlib.MAX_WBITS, -zlib.MAX_WBITS)}


def _decompress(body: bytes, encoding: str, limit: int) -> bytes:
    """Inflate at most ``limit`` bytes (a small bomb cannot grow past the body cap).

    Every gzip member is read (a body may hold several, one after the other); a stream
    that stops before its end, or bytes after a deflate stream, are a 400."""
    parts: list[bytes] = []
    room = limit
    rest = body
    while True:
        data, rest, complete = _inflate(rest, encoding, room + 1)
        if len(data) > room:
            raise ApiError(
                413, "payload_too_large", f"Decompressed request body is larger than {limit} bytes"
            )
        if not complete:
            raise ApiError(
                400,
                "invalid_encoding",
                f"body: the {encoding} data ends before its compressed stream does",
            )
        parts.append(data)
        room -= len(data)
        if not rest:
            return b"".join(parts)
        if encoding != "gzip":
            raise ApiError(
                400, "invalid_encoding", f"body: bytes follow the end of the {encoding} data"
            )


def _inflate(body: bytes, encoding: str, most: int) -> tuple[bytes, bytes, bool]:
    """The first compressed stream of ``body``: (up to ``most`` bytes of it, the bytes
    after it, whether it ended within ``most``)."""
    for wbits in _WBITS[encoding]:
        decompressor = zlib.decompressobj(wbits)
        try:
            data = decompressor.decompress(body, most)
        except zlib.error:
            continue
        return data, decompressor.unused_data, decompressor.eof
    raise ApiError(
        400,
        "invalid_encoding",
        f"body: Content-Encoding is {encoding} but the body is not {encoding} data",
    )


def _media_type(request: Request) -> str:
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media not in (_PROTOBUF, _JSON):
        raise ApiError(
            415,
            "unsupported_media_type",
            "content-type: must be application/x-protobuf or application/json",
            {"content-type": ["must be application/x-protobuf or application/json"]},
        )
    return media


def _answer(media: str, rejected: int, errors: list[str]) -> Response:
    message = "; ".join(errors)[:500]
    if media == _PROTOBUF:
        response = ExportTraceServiceResponse()
        if rejected:
            response.partial_success.CopyFrom(
                ExportTracePartialSuccess(rejected_spans=rejected, error_message=message)
            )
        return Response(response.SerializeToString(), media_type=_PROTOBUF)
    body: dict[str, object] = {}
    if rejected:
        # OTLP/JSON writes 64-bit integers as strings.
        body["partialSuccess"] = {"rejectedSpans": str(rejected), "errorMessage": message}
    return Response(orjson.dumps(body), media_type=_JSON)


@dataclass
class _Admitted:
    """What :func:`_decode_and_map` did: the export, whether its spans were admitted (and
    how many are counted pending), its parts and the parts mapped so far (the first by
    :func:`_decode_and_map`, the others by :func:`_store`)."""

    export: Export = field(default_factory=Export)
    admitted: bool = False
    counted: int = 0
    parts: list[Export] = field(default_factory=list)
    mapped: list[list[PreparedTrace]] = field(default_factory=list)

    async def release(self) -> None:
        """Drop the decoded spans and their rows, once the answer is sent (the response's
        background task). Freeing them costs the process ~2-4 µs of CPU per span: done
        here, the exporter already has its answer; left to the request's last reference,
        it came before the answer was sent."""
        self.export, self.parts, self.mapped = Export(), [], []


def _decode_and_map(
    media: str, body: bytes, pending: PendingSpans, limit: int, into: _Admitted
) -> None:
    """Decode the body, admit its spans, map the first part: one trip to a worker thread
    instead of one per step (each trip waits for a thread to wake up, and then for the
    event loop). Fills ``into`` as it goes, so the caller releases what was counted even
    when a later step raises."""
    into.export = export = decode_protobuf(body) if media == _PROTOBUF else decode_json(body)
    count = export.span_count
    if not pending.admit(count, limit):
        return
    into.admitted, into.counted = True, count
    if count:
        into.parts = split(export, _PART_SPANS)
        into.mapped.append(prepare(into.parts[0]))


# Spans per write transaction of a large export (mapping the next part overlaps the
# previous part's write). The standard exporters send at most 512 spans per export, which
# are then one transaction: measured export by export on one server, parts of 128 cost
# ~20 µs more CPU per span (more commits, each rewriting pages the previous one wrote, and
# two threads trading the GIL) than the overlap saved in wall time.
_PART_SPANS = 512


async def _store(request: Request, account: Account, admitted: _Admitted) -> Outcome:
    """Store the export part by part: part k+1 is mapped (in a worker thread) while the
    writer thread stores part k; returns once every part is committed."""
    schemas = request.app.state.schemas
    backend = storage(request)

    def job(traces: list[PreparedTrace]) -> Callable[[WriteSession], Outcome]:
        def run(session: WriteSession) -> Outcome:
            stamp = _time.now()
            ctx = WriteContext(account=account, schemas=schemas, clock=lambda: stamp)
            return store(session, ctx, traces)

        return run

    mapped = admitted.mapped
    writes: list[asyncio.Future[Outcome]] = [asyncio.ensure_future(backend.write(job(mapped[0])))]
    try:
        for part in admitted.parts[1:]:
            mapped.append(await run_in_threadpool(prepare, part))
            writes.append(asyncio.ensure_future(backend.write(job(mapped[-1]))))
    finally:
        # Every started write is awaited, also when mapping a later part failed.
        results = await asyncio.gather(*writes, return_exceptions=True)
    outcome = Outcome()
    for result in results:
        if isinstance(result, BaseException):
            raise result
        outcome.add(result)
    return outcome


@router.post(
    PATH,
    summary="OTLP/HTTP trace export (protobuf or JSON): one OTel trace → one agent instance",
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "An OTLP ExportTraceServiceRequest; Content-Encoding gzip or deflate.",
            "content": {
                _PROTOBUF: {"schema": {"type": "string", "format": "binary"}},
                _JSON: {
                    "schema": {
                        "type": "object",
                        "properties": {"resourceSpans": {"type": "array", "items": {}}},
                    }
                },
            },
        }
    },
    responses={
        200: {"description": "ExportTraceServiceResponse (partial_success counts refused spans)"},
        503: {"description": "Too many spans waiting to be stored; retry after Retry-After"},
    },
)
async def export_traces(request: Request, account: CurrentAccount) -> Response:
    """Store the spans of an OTLP export; answer once they are committed."""
    media = _media_type(request)
    config = settings(request)
    body = await read_body(request)
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding in _WBITS:
        body = _decompress(body, encoding, config.max_body_bytes)
    elif encoding not in ("", "identity"):
        raise ApiError(
            415,
            "unsupported_encoding",
            "content-encoding: must be gzip, deflate or identity",
            {"content-encoding": ["must be gzip, deflate or identity"]},
        )
    journal: Applier | None = getattr(request.app.state, "otlp_journal", None)
    if journal is not None:
        return await _journaled(request, account, media, body, journal)
    pending = _pending(request)
    admitted = _Admitted()
    try:
        # Not abandoned when the request is cancelled (anyio waits for the thread), so
        # what it counted is known here.
        await run_in_threadpool(
            _decode_and_map, media, body, pending, config.otlp_max_pending_spans, admitted
        )
        if not admitted.admitted:
            return _overloaded()
        outcome = await _store(request, account, admitted) if admitted.parts else Outcome()
    finally:
        pending.release(admitted.counted)
    export = admitted.export
    response = _answer(media, export.rejected + outcome.rejected, export.errors + outcome.errors)
    response.background = BackgroundTask(admitted.release)
    return response


def _overloaded() -> Response:
    return Response(
        orjson.dumps(
            {
                "status": "error",
                "code": "overloaded",
                "message": "Too many spans waiting to be stored; retry later",
            }
        ),
        status_code=503,
        media_type=_JSON,
        headers={"Retry-After": str(_RETRY_AFTER_SECONDS)},
    )


@dataclass
class _Checked:
    """What :func:`_check_and_admit` did: the checked export (protobuf: parsed and its ids
    checked, converted later by the applier; OTLP/JSON: decoded), and how many spans were
    admitted as pending (None: refused, too many pending)."""

    export: Export | Checked = field(default_factory=Export)
    counted: int | None = None


def _check_and_admit(
    media: str, body: bytes, pending: PendingSpans, limit: int, into: _Checked
) -> None:
    """Check the body and admit its spans (in a worker thread): only what the answer
    needs, so the exporter waits for less (``otlp_journal.py``)."""
    into.export = export = check_protobuf(body) if media == _PROTOBUF else decode_json(body)
    if pending.admit(export.span_count, limit):
        into.counted = export.span_count


async def _journaled(
    request: Request, account: Account, media: str, body: bytes, journal: Applier
) -> Response:
    """Check and admit the export, commit it to the journal, answer; the journal's
    applier stores its spans next (``otlp_journal.py``)."""
    checked = _Checked()
    limit = settings(request).otlp_max_pending_spans
    handed_over = False  # to the journal write's callback, which releases or submits
    try:
        async with journal.lane:
            await run_in_threadpool(_check_and_admit, media, body, journal.pending, limit, checked)
        counted = checked.counted
        if counted is None:
            return _overloaded()
        if counted:
            received = _time.now()
            export = checked.export

            def keep(session: WriteSession) -> int:
                return cast(JournalSession, session).journal_export(
                    account.id, media, body, received
                )

            def settle(done: asyncio.Future[int]) -> None:
                # Runs even when this request is cancelled meanwhile: a committed export
                # is always handed to the applier, and its spans stop counting as pending
                # only once stored.
                if done.cancelled() or done.exception() is not None:
                    journal.pending.release(counted)
                else:
                    journal.submit(Entry(done.result(), account, export, counted))

            write = asyncio.ensure_future(storage(request).write(keep))
            write.add_done_callback(settle)
            handed_over = True
            await asyncio.shield(write)
    finally:
        if not handed_over:
            journal.pending.release(checked.counted or 0)
    return _answer(media, checked.export.rejected, checked.export.errors)
