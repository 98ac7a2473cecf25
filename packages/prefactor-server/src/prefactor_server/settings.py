"""Server settings: one table feeds the CLI flags, the environment variables and the docs.

Each entry of :data:`SETTINGS` names a setting, its default, its help text and the
environment variable that sets it. :class:`Settings` is the validated value object that
:func:`prefactor_server.app.create_app` takes; nothing is read at import time.

Example::

    settings = Settings.from_env({"PREFACTOR_API_TOKEN": "dev-token"}, db_path="x.db")
    app = create_app(settings)
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "MIN_API_TOKEN_CHARS",
    "POSTGRES_SCHEMES",
    "SETTINGS",
    "Setting",
    "Settings",
    "SettingsError",
    "redact_url",
]

MIN_API_TOKEN_CHARS = 16
"""Shortest ``PREFACTOR_API_TOKEN`` accepted: a chosen token is a password, and the
database keeps a fast hash of it (the tokens the server makes have 256 random bits)."""


class SettingsError(ValueError):
    """A setting has a value the server cannot run with (the server fails fast on it)."""


@dataclass(frozen=True)
class Setting:
    """One row of the settings table.

    Attributes:
        name: The attribute name on :class:`Settings` and the CLI option (with dashes).
        default: The value used when neither an argument nor the environment sets it.
        help: One line for ``--help`` and the README.
        env: The environment variable that sets it.
    """

    name: str
    default: Any
    help: str
    env: str


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "db_path",
        Path("prefactor.db"),
        "SQLite database file, or a postgresql://user@host/db URL.",
        "PREFACTOR_DB",
    ),
    Setting(
        "database_url",
        None,
        "PostgreSQL URL (postgresql://user[:password]@host[:port]/db); wins over the SQLite file.",
        "PREFACTOR_DATABASE_URL",
    ),
    Setting("host", "127.0.0.1", "Interface to bind to.", "PREFACTOR_HOST"),
    Setting("port", 8000, "TCP port to listen on.", "PREFACTOR_PORT"),
    Setting(
        "api_token",
        None,
        "A bearer token accepted as the local account's token (for scripts and CI).",
        "PREFACTOR_API_TOKEN",
    ),
    Setting(
        "max_body_bytes",
        10 * 1024 * 1024,
        "Largest request body accepted; larger bodies get 413.",
        "PREFACTOR_MAX_BODY_BYTES",
    ),
    Setting(
        "body_timeout",
        60.0,
        "Seconds a request body may take to arrive; slower bodies get 408.",
        "PREFACTOR_BODY_TIMEOUT",
    ),
    Setting(
        "bulk_max_items",
        1000,
        "Most items accepted in one POST /api/v1/bulk request.",
        "PREFACTOR_BULK_MAX_ITEMS",
    ),
    Setting(
        "otlp_max_pending_spans",
        50_000,
        "Most OTLP spans received but not yet stored; past it POST /v1/traces answers 503.",
        "PREFACTOR_OTLP_MAX_PENDING_SPANS",
    ),
)


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Validated server settings (keyword-only, immutable, compared by value).

    Raises:
        SettingsError: A value is out of range.
    """

    db_path: Path = Path("prefactor.db")
    database_url: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    api_token: str | None = None
    max_body_bytes: int = 10 * 1024 * 1024
    body_timeout: float = 60.0
    bulk_max_items: int = 1000
    otlp_max_pending_spans: int = 50_000

    def __post_init__(self) -> None:
        db_path, url = _database(self.db_path, self.database_url)
        object.__setattr__(self, "db_path", db_path)
        object.__setattr__(self, "database_url", url)
        if not 0 <= self.port <= 65535:
            raise SettingsError(f"port must be 0-65535, got {self.port}")
        if self.max_body_bytes < 1024:
            raise SettingsError(f"max_body_bytes must be at least 1024, got {self.max_body_bytes}")
        if not self.body_timeout > 0:
            raise SettingsError(f"body_timeout must be above 0, got {self.body_timeout}")
        if self.bulk_max_items < 1:
            raise SettingsError(f"bulk_max_items must be at least 1, got {self.bulk_max_items}")
        if self.otlp_max_pending_spans < 1:
            raise SettingsError(
                f"otlp_max_pending_spans must be at least 1, got {self.otlp_max_pending_spans}"
            )
        if self.api_token is not None and len(self.api_token) < 8:
            # A short shared token is guessable; refuse it rather than serve with it.
            raise SettingsError("api_token must be at least 8 characters")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings: explicit overrides, then environment variables, then defaults.

        Args:
            environ: The environment to read (``os.environ`` when None); tests pass a dict.
            **overrides: Values that win over the environment; None means "not given".

        Returns:
            The validated settings.

        Raises:
            SettingsError: An environment variable or override has a bad value.
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for setting in SETTINGS:
            given = overrides.get(setting.name)
            if given is not None:
                values[setting.name] = given
            elif setting.env in env and env[setting.env] != "":
                values[setting.name] = _coerce(setting, env[setting.env])
        token = values.get("api_token")
        if token is not None and len(token) < MIN_API_TOKEN_CHARS:
            # The user-facing path (serve, the CLI); Settings() itself keeps a lower floor
            # for tests that build apps with short fixed tokens.
            raise SettingsError(
                f"PREFACTOR_API_TOKEN must be at least {MIN_API_TOKEN_CHARS} characters, got "
                f"{len(token)}: a short token can be guessed; use a long random value (for "
                'example python -c "import secrets; print(secrets.token_urlsafe(32))")'
            )
        return cls(**values)

    def replace(self, **changes: Any) -> Settings:
        """Return a copy with some values changed (validated again)."""
        return dataclasses.replace(self, **changes)

    @property
    def database_label(self) -> str:
        """Where the data lives, for messages: the file, or the URL without its password."""
        if self.database_url is None:
            return str(self.db_path)
        return redact_url(self.database_url)


POSTGRES_SCHEMES = ("postgresql", "postgres")
# "scheme:/..." (a URL, or one a Path folded), or a database scheme without slashes.
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):/|^(postgres|postgresql|sqlite):", re.IGNORECASE)


def redact_url(url: str) -> str:
    """Return ``url`` with its password (if any) replaced by ``***``."""
    return re.sub(r"^([^:/]+://[^:/@]*):[^@]*@", r"\1:***@", url)


def _database(db_path: Path | str, url: str | None) -> tuple[Path, str | None]:
    """Split the database settings into the SQLite file and the PostgreSQL URL.

    ``db_path`` may be a URL (``--db postgresql://...``, ``--db sqlite:///file.db``); any
    other scheme is refused here, at start, never turned into a file path.
    """
    text = str(db_path)
    match = _SCHEME.match(text)
    if match is not None:
        scheme = (match.group(1) or match.group(2)).lower()
        if isinstance(db_path, str) and scheme == "sqlite" and text.startswith("sqlite:///"):
            db_path = text[len("sqlite:///") :] or "prefactor.db"
        elif isinstance(db_path, str) and scheme in POSTGRES_SCHEMES and "://" in text:
            if url is not None and url != text:
                raise SettingsError(
                    "two PostgreSQL URLs given (--db/PREFACTOR_DB and PREFACTOR_DATABASE_URL)"
                )
            url, db_path = text, Path("prefactor.db")
        else:
            raise SettingsError(
                f"unsupported database {redact_url(text)[:80]!r}: use a SQLite file path, "
                "sqlite:///path or postgresql://user@host/db"
            )
    if url is not None:
        match = _SCHEME.match(url)
        if (
            match is None
            or (match.group(1) or "").lower() not in POSTGRES_SCHEMES
            or "://" not in url
        ):
            raise SettingsError(
                f"unsupported database URL {redact_url(url)[:80]!r}: "
                "expected postgresql://user@host/db"
            )
    return Path(db_path), url


def _coerce(setting: Setting, raw: str) -> Any:
    default = setting.default
    if isinstance(default, bool):  # pragma: no cover - no boolean settings yet
        return raw.lower() in {"1", "true", "yes", "on"}
    if isinstance(default, int):
        try:
            return int(raw)
        except ValueError:
            raise SettingsError(f"{setting.env} must be an integer, got {raw!r}") from None
    if isinstance(default, float):
        try:
            return float(raw)
        except ValueError:
            raise SettingsError(f"{setting.env} must be a number, got {raw!r}") from None
    if isinstance(default, Path):
        # A URL stays a string: Path() would fold "postgresql://" into "postgresql:/".
        return raw if _SCHEME.match(raw) else Path(raw)
    return raw
