"""``POST /v1/traces`` with compressed bodies: gzip (one member or several), deflate in
its zlib framing and as a raw stream; a stream cut short, bytes after a deflate stream
and a bomb spread over several gzip members are refused with a 4xx naming the body."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import httpx
import pytest
from tests.otel.support import otlp_protobuf, record_trace

from prefactor_server.api import otlp
from prefactor_server.testing import LocalServer

TOKEN = "otlp-encodings-token"
CAP = 65536
HEADERS = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/x-protobuf"}


def _raw_deflate(data: bytes) -> bytes:
    packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return packer.compress(data) + packer.flush()


def _two_gzip_members(data: bytes) -> bytes:
    """``data`` cut in two, each half its own gzip member, one after the other."""
    half = len(data) // 2
    return gzip.compress(data[:half]) + gzip.compress(data[half:])


async def _post_and_list(
    tmp_path: Path, encoding: str, body: bytes
) -> tuple[httpx.Response, set[str]]:
    server = LocalServer(tmp_path / "encodings.db", token=TOKEN, max_body_bytes=CAP)
    async with server, server.client() as client:
        bare = httpx.AsyncClient(transport=server.transport, base_url=server.api_url)
        async with bare:
            response = await bare.post(
                otlp.PATH, content=body, headers={**HEADERS, "Content-Encoding": encoding}
            )
        listed = await client.get("/api/v1/agent_spans", params={"pagination[page_size]": 100})
        assert listed.status_code == 200, listed.text
    return response, {span["id"] for span in listed.json()["summaries"]}


@pytest.mark.parametrize(
    ("encoding", "pack"),
    [
        ("gzip", gzip.compress),
        ("gzip", _two_gzip_members),
        ("deflate", zlib.compress),
        ("deflate", _raw_deflate),
        ("Deflate", _raw_deflate),
    ],
    ids=["gzip", "gzip-two-members", "deflate-zlib", "deflate-raw", "deflate-raw-upper-case"],
)
async def test_every_compressed_form_stores_the_whole_export(
    tmp_path: Path, encoding: str, pack: object
) -> None:
    spans = record_trace()
    assert callable(pack)
    response, stored = await _post_and_list(tmp_path, encoding, pack(otlp_protobuf(spans)))
    assert response.status_code == 200, response.text
    assert len(stored) == len(spans)


def _cut(data: bytes) -> bytes:
    return data[: len(data) - 9]


@pytest.mark.parametrize(
    ("encoding", "body", "status", "words"),
    [
        ("gzip", _cut(gzip.compress(b"\x0a\x00" * 2000)), 400, "ends before"),
        ("deflate", _cut(zlib.compress(b"\x0a\x00" * 2000)), 400, "ends before"),
        ("deflate", _cut(_raw_deflate(b"\x0a\x00" * 2000)), 400, "ends before"),
        ("deflate", zlib.compress(b"\x0a\x00") + b"tail", 400, "bytes follow"),
        ("gzip", gzip.compress(b"\x0a\x00") + b"not gzip", 400, "not gzip"),
        ("gzip", gzip.compress(b"\0" * (CAP // 2 + 1)) * 2, 413, "larger than"),
        ("deflate", b"\xff\xff\xff\xff", 400, "not deflate"),
    ],
    ids=[
        "gzip-cut",
        "zlib-cut",
        "raw-cut",
        "deflate-tail",
        "gzip-tail",
        "gzip-members-bomb",
        "deflate-garbage",
    ],
)
async def test_broken_or_oversized_compressed_bodies_are_refused_and_nothing_is_stored(
    tmp_path: Path, encoding: str, body: bytes, status: int, words: str
) -> None:
    response, stored = await _post_and_list(tmp_path, encoding, body)
    assert response.status_code == status, response.text
    error = response.json()
    assert error["code"] == ("payload_too_large" if status == 413 else "invalid_encoding")
    assert words in error["message"]
    assert len(response.content) < 1000
    assert stored == set()
