"""Print, as JSON, the error each of a set of bad calls raises with the installed SDK.

Run by tests/compat/test_error_messages.py with the published packages' interpreter and
with ours: user code that matches on a published message must match ours too.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable
from typing import Any

from prefactor_core import (
    PrefactorCoreClient,
    PrefactorCoreConfig,
    PrefactorTelemetryFailureError,
    PrefactorTerminatedError,
    QueueConfig,
    SchemaRegistry,
)
from prefactor_core.managers import SpanManager
from prefactor_core.utils import validate_idempotency_key
from prefactor_http.config import HttpClientConfig

URL, TOKEN = "http://127.0.0.1:9", "token"


def _http(**changes: Any) -> Callable[[], Any]:
    return lambda: HttpClientConfig(**{"api_url": URL, "api_token": TOKEN, **changes})


def _registry_twice() -> None:
    registry = SchemaRegistry()
    registry.register_type("agent:llm", params_schema={"type": "object"})
    registry.register_type("agent:llm", params_schema={"type": "object"})


def _registry_case(kind: str) -> Callable[[], Any]:
    def run() -> None:
        registry = SchemaRegistry()
        for _ in range(2):
            if kind == "span":
                registry.register("agent:llm", {"type": "object"})
            elif kind == "result":
                registry.register_result_schema("agent:llm", {"type": "object"})
            else:
                registry.register_quality_schema("accuracy", {"type": "object"})

    return run


def _merge_conflict() -> None:
    first, second = SchemaRegistry(), SchemaRegistry()
    for registry in (first, second):
        registry.register_type("agent:llm", params_schema={"type": "object"})
    first.merge(second)


def _finish_unknown_span() -> None:
    async def enqueue(_: object) -> None:
        pass

    asyncio.run(SpanManager(None, enqueue).finish("no-such-span"))


def _raise(error: Exception) -> Callable[[], Any]:
    def run() -> None:
        raise error

    return run


def _span_before_initialize() -> None:
    config = PrefactorCoreConfig(http_config=HttpClientConfig(api_url=URL, api_token=TOKEN))
    asyncio.run(PrefactorCoreClient(config).create_span("instance", "agent:llm"))


CASES: dict[str, Callable[[], Any]] = {
    "api_url empty": _http(api_url=""),
    "api_token empty": _http(api_token=""),
    "request_timeout 0": _http(request_timeout=0),
    "connect_timeout 0": _http(connect_timeout=0),
    "max_retries -1": _http(max_retries=-1),
    "initial_retry_delay 0": _http(initial_retry_delay=0),
    "max_retry_delay 0": _http(max_retry_delay=0),
    "initial above max": _http(initial_retry_delay=5, max_retry_delay=1),
    "retry_multiplier 0.5": _http(retry_multiplier=0.5),
    "num_workers 0": lambda: QueueConfig(num_workers=0),
    "idempotency key empty": lambda: validate_idempotency_key(""),
    "idempotency key too long": lambda: validate_idempotency_key("k" * 65),
    "span type registered twice": _registry_twice,
    "span schema registered twice": _registry_case("span"),
    "result schema registered twice": _registry_case("result"),
    "quality schema registered twice": _registry_case("quality"),
    "merge conflict": _merge_conflict,
    "finish of an unknown span": _finish_unknown_span,
    "span before initialize": _span_before_initialize,
    "terminated with a reason": _raise(PrefactorTerminatedError("ops stop")),
    "terminated without a reason": _raise(PrefactorTerminatedError()),
    "telemetry failure": _raise(PrefactorTelemetryFailureError("boom", cause=ValueError("x"))),
}


def main() -> None:
    result: dict[str, Any] = {}
    for name, case in CASES.items():
        try:
            case()
        except Exception as error:
            # args[0]: a KeyError's str() quotes its message; what was raised is args[0].
            message = str(error.args[0]) if error.args else str(error)
            types = [cls.__name__ for cls in type(error).__mro__]
            result[name] = {"type": type(error).__name__, "types": types, "message": message}
        else:
            result[name] = None
    json.dump(result, sys.stdout, indent=1)


if __name__ == "__main__":
    main()
