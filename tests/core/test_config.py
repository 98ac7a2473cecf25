"""Tests for prefactor_core.config: QueueConfig and PrefactorCoreConfig."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from prefactor_core import PrefactorCoreConfig, QueueConfig, SchemaRegistry
from prefactor_http import HttpClientConfig


@pytest.fixture(name="http_config")
def fixture_http_config() -> HttpClientConfig:
    """A valid HTTP configuration."""
    return HttpClientConfig(api_url="https://api.prefactor.test", api_token="pf_test")


# -- QueueConfig ---------------------------------------------------------------------


def test_queue_config_defaults() -> None:
    """QueueConfig defaults match the seeds and the documented delivery settings."""
    config = QueueConfig()
    assert (config.num_workers, config.max_retries, config.retry_delay_base) == (3, 3, 1.0)
    assert config.max_retry_delay == 30.0
    assert config.max_queue_size == 200_000
    assert config.put_timeout == 0.05
    assert config.batch_size == 1000
    assert config.batch_linger == 0.005


def test_queue_config_seed_example() -> None:
    """The README's QueueConfig example is accepted."""
    config = QueueConfig(num_workers=3, max_retries=3, retry_delay_base=1.0)
    assert config == QueueConfig()


@pytest.mark.parametrize(
    "fields",
    [
        {"num_workers": 1},
        {"num_workers": 20},
        {"max_retries": 0},
        {"max_retries": 100},
        {"retry_delay_base": 0.001},
        {"put_timeout": 0},
        {"batch_size": 1},
        {"batch_size": 1000},
        {"batch_linger": 0},
        {"max_queue_size": 1},
    ],
)
def test_queue_config_accepts_bounds(fields: dict[str, Any]) -> None:
    """Values at the edges of each range are accepted."""
    config = QueueConfig(**fields)
    for name, value in fields.items():
        assert getattr(config, name) == value


@pytest.mark.parametrize(
    "fields",
    [
        {"num_workers": 0},
        {"num_workers": 21},
        {"num_workers": -1},
        {"max_retries": -1},
        {"retry_delay_base": 0},
        {"retry_delay_base": -1.0},
        {"max_retry_delay": 0},
        {"max_queue_size": 0},
        {"put_timeout": -0.1},
        {"batch_size": 0},
        {"batch_size": 1001},
        {"batch_linger": -1},
        {"num_workers": "many"},
    ],
)
def test_queue_config_rejects_out_of_range(fields: dict[str, Any]) -> None:
    """Values outside each range raise pydantic's ValidationError naming the field."""
    with pytest.raises(ValidationError) as caught:
        QueueConfig(**fields)
    assert next(iter(fields)) in str(caught.value)


def test_queue_config_ignores_unknown_fields_and_names_them(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An unknown field is accepted, as published, and named in a warning (a typo shows)."""
    config = QueueConfig(num_worker=3)  # type: ignore[call-arg]
    assert config.num_workers == QueueConfig().num_workers
    assert "QueueConfig ignores unknown option(s): num_worker" in caplog.text


def test_queue_config_is_keyword_only() -> None:
    """QueueConfig takes no positional arguments."""
    with pytest.raises(TypeError):
        QueueConfig(3)  # type: ignore[misc]


def test_queue_config_is_mutable_and_validates_assignments() -> None:
    """Fields can be assigned, as published; a bad value raises ValidationError."""
    config = QueueConfig()
    config.num_workers = 5
    assert config.num_workers == 5
    with pytest.raises(ValidationError, match="num_workers"):
        config.num_workers = 0
    assert config.num_workers == 5


def test_queue_config_value_equality() -> None:
    """QueueConfigs with equal fields are equal."""
    assert QueueConfig(num_workers=5) == QueueConfig(num_workers=5)
    assert QueueConfig(num_workers=5) != QueueConfig(num_workers=6)


# -- PrefactorCoreConfig -------------------------------------------------------------


def test_core_config_requires_http_config() -> None:
    """Leaving out http_config raises ValidationError."""
    with pytest.raises(ValidationError, match="http_config"):
        PrefactorCoreConfig()  # type: ignore[call-arg]


@pytest.mark.parametrize("value", [None, "https://api.prefactor.test", 42])
def test_core_config_rejects_wrong_http_config(value: Any) -> None:
    """An http_config that is not an HttpClientConfig raises ValidationError."""
    with pytest.raises(ValidationError, match="http_config"):
        PrefactorCoreConfig(http_config=value)


def test_core_config_rejects_invalid_http_fields() -> None:
    """A dict with an invalid api_url raises ValidationError."""
    with pytest.raises(ValidationError, match="api_url"):
        PrefactorCoreConfig(http_config={"api_url": "ftp://x", "api_token": "t"})  # type: ignore[arg-type]


def test_core_config_defaults(http_config: HttpClientConfig) -> None:
    """Everything but http_config has a default."""
    config = PrefactorCoreConfig(http_config=http_config)
    assert config.http_config is http_config
    assert config.queue_config == QueueConfig()
    assert config.schema_registry is None
    assert config.close_timeout == 10.0
    assert config.startup_timeout == 2.0
    assert config.spool_path is None
    assert config.enabled is True


def test_core_config_keeps_the_registry(http_config: HttpClientConfig) -> None:
    """The schema registry is kept as the same object (the seed's example)."""
    registry = SchemaRegistry()
    registry.register("langchain:llm", {"type": "object"})
    config = PrefactorCoreConfig(http_config=http_config, schema_registry=registry)
    assert config.schema_registry is registry


def test_core_config_takes_every_field(http_config: HttpClientConfig, tmp_path: Path) -> None:
    """All fields can be set."""
    queue = QueueConfig(num_workers=5, max_retries=0, retry_delay_base=0.5)
    config = PrefactorCoreConfig(
        http_config=http_config,
        queue_config=queue,
        close_timeout=0,
        startup_timeout=0.5,
        spool_path=str(tmp_path / "spool.db"),  # type: ignore[arg-type]
        enabled=False,
    )
    assert config.queue_config is queue
    assert config.spool_path == tmp_path / "spool.db"
    assert isinstance(config.spool_path, Path)
    assert config.enabled is False


@pytest.mark.parametrize(
    "fields",
    [
        {"close_timeout": -1},
        {"startup_timeout": -0.5},
        {"queue_config": {"num_workers": 0}},
        {"termination_poll_interval": 0},
    ],
)
def test_core_config_rejects_bad_fields(
    http_config: HttpClientConfig, fields: dict[str, Any]
) -> None:
    """Negative timeouts, a bad queue config or a bad poll interval raise ValidationError."""
    with pytest.raises(ValidationError):
        PrefactorCoreConfig(http_config=http_config, **fields)


def test_core_config_accepts_unknown_fields_as_published(
    http_config: HttpClientConfig, caplog: pytest.LogCaptureFixture
) -> None:
    """An unknown option is ignored (code written for another version runs) and named."""
    config = PrefactorCoreConfig(http_config=http_config, unknown_option=True)  # type: ignore[call-arg]
    assert not hasattr(config, "unknown_option")
    assert "PrefactorCoreConfig ignores unknown option(s): unknown_option" in caplog.text


def test_core_config_schema_registry_can_be_replaced(http_config: HttpClientConfig) -> None:
    """``config.schema_registry = registry`` works, as the published adapters do it."""
    config = PrefactorCoreConfig(http_config=http_config)
    registry = SchemaRegistry()
    config.schema_registry = registry
    assert config.schema_registry is registry


def test_core_config_repr_hides_the_token(http_config: HttpClientConfig) -> None:
    """The config's repr does not show the API token."""
    assert "pf_test" not in repr(PrefactorCoreConfig(http_config=http_config))
