"""Accounts and tokens: the local account of first start, token creation and revocation.

Tokens are stored as SHA-256 hashes; the plain token exists only in the answer of
:func:`create_token`, which the CLI prints once.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from prefactor_http.pfid import MAX_PARTITION, generate_pfid
from prefactor_server import _time
from prefactor_server.storage.base import Account, NewToken, TokenRow, WriteSession

__all__ = [
    "Bootstrap",
    "RevokedTokenError",
    "bootstrap_local_account",
    "create_account",
    "create_token",
    "hash_token",
]

LOCAL_ACCOUNT_NAME = "local"


def hash_token(token: str) -> str:
    """Return the stored form of a token."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    """Return a fresh random token (``pf_`` + 43 URL-safe characters)."""
    return "pf_" + secrets.token_urlsafe(32)


def create_account(session: WriteSession, name: str) -> Account:
    """Create an account with a random 30-bit PFID partition and a default environment."""
    partition = secrets.randbelow(MAX_PARTITION + 1)
    now = _time.now()
    environment_id = generate_pfid(partition)
    account = Account(
        id=generate_pfid(partition),
        name=name,
        partition=partition,
        default_agent_id=None,
        default_environment_id=environment_id,
        inserted_at=now,
    )
    session.insert_account(account)
    session.insert_environment(
        {"account_id": account.id, "id": environment_id, "name": "local", "inserted_at": now}
    )
    return account


def create_token(
    session: WriteSession, account: Account, name: str, token: str | None = None
) -> tuple[TokenRow, str]:
    """Store a token for ``account``.

    Args:
        session: The write session.
        account: The owner.
        name: A label shown by ``prefactor token list``.
        token: The token to accept; a random one when None.

    Returns:
        The stored record (without the hash) and the plain token.
    """
    plain = token if token is not None else new_token()
    record: NewToken = {
        "id": generate_pfid(account.partition),
        "account_id": account.id,
        "name": name,
        "token_hash": hash_token(plain),
        "inserted_at": _time.now(),
    }
    session.insert_token(record)
    listed: TokenRow = {
        "id": record["id"],
        "account_id": record["account_id"],
        "name": name,
        "inserted_at": record["inserted_at"],
        "revoked_at": None,
    }
    return listed, plain


class RevokedTokenError(Exception):
    """The token given to accept at start-up (``PREFACTOR_API_TOKEN``) was revoked.

    Attributes:
        token_id: The id of the revoked token (as ``prefactor token list`` shows it).
        revoked_at: When it was revoked.
    """

    def __init__(self, token_id: str, revoked_at: str) -> None:
        super().__init__(
            f"PREFACTOR_API_TOKEN is a token that was revoked (token {token_id}, revoked at "
            f"{revoked_at}); a revoked token is never accepted again: set PREFACTOR_API_TOKEN "
            "to a new value, or unset it and use 'prefactor token create'"
        )
        self.token_id = token_id
        self.revoked_at = revoked_at


@dataclass(frozen=True)
class Bootstrap:
    """What :func:`bootstrap_local_account` did.

    Attributes:
        account: The local account.
        new_token: The token made now (print it once), or None.
    """

    account: Account
    new_token: str | None


def bootstrap_local_account(session: WriteSession, api_token: str | None) -> Bootstrap:
    """Make sure the local account exists and accepts ``api_token``.

    On first start this creates the account and, unless ``api_token`` is given, a random
    token. A given ``api_token`` is registered once (by hash) for the local account.
    """
    # Several server processes may start on one database at once: one makes the account.
    session.lock("bootstrap")
    account = session.first_account()
    made: str | None = None
    if account is None:
        account = create_account(session, LOCAL_ACCOUNT_NAME)
        if api_token is None:
            _, made = create_token(session, account, "first start")
    if api_token is not None:
        known = session.find_token(hash_token(api_token))
        if known is None:
            create_token(session, account, "PREFACTOR_API_TOKEN", api_token)
        elif known["revoked_at"] is not None:
            raise RevokedTokenError(known["id"], known["revoked_at"])
    return Bootstrap(account, made)
