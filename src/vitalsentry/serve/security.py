"""API keys, per-key rate limits and the request body limit.

Keys are never stored: the environment holds ``SHA256HEX_OF_KEY:scope[;scope]`` entries
(comma-separated), and a presented key is hashed and compared with every entry in
constant time (:func:`hmac.compare_digest`, no early exit). Each key gets an in-memory
token bucket refilled at ``per_minute / 60`` tokens a second. Bodies are limited by their
``Content-Length`` and, as they stream in, by the bytes actually received.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Final

from fastapi import HTTPException
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vitalsentry.errors import VitalSentryError

SCOPES: Final[tuple[str, ...]] = ("score", "embed", "admin", "view")
"""Scopes a key may hold."""

_HEX_DIGEST = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class KeyEntry:
    """One accepted API key, known by its sha256.

    Attributes
    ----------
    digest : bytes
        sha256 of the key (32 bytes).
    scopes : frozenset of str
        Scopes among :data:`SCOPES`.
    """

    digest: bytes
    scopes: frozenset[str]

    @property
    def key_id(self) -> str:
        """Short public identifier (first 12 hex digits of the digest), safe to log."""
        return self.digest.hex()[:12]

    def entry(self) -> str:
        """Return the entry line ``SHA256HEX:scope[;scope]`` (scopes in :data:`SCOPES` order)."""
        return f"{self.digest.hex()}:{';'.join(s for s in SCOPES if s in self.scopes)}"


def hash_key(key: str) -> bytes:
    """sha256 of a key (UTF-8), 32 bytes."""
    return hashlib.sha256(key.encode()).digest()


def parse_key_entries(text: str) -> tuple[KeyEntry, ...]:
    """Parse ``VITALSENTRY_API_KEYS``: comma-separated ``SHA256HEX:scope[;scope]``.

    Parameters
    ----------
    text : str
        The variable's value; blank entries are skipped.

    Returns
    -------
    tuple of KeyEntry
        The entries, in order.

    Raises
    ------
    ValueError
        An entry is malformed (the message names it by position, never echoing it).
    """
    entries = []
    for position, raw in enumerate((p.strip() for p in text.split(",")), start=1):
        if not raw:
            continue
        digest, sep, scope_text = raw.partition(":")
        digest = digest.strip().lower()
        if not sep or not _HEX_DIGEST.fullmatch(digest):
            raise ValueError(
                f"entry {position}: expected SHA256HEX_OF_KEY:scope[;scope] with 64 hex digits "
                "(`vitalsentry keygen` prints one)"
            )
        scopes = frozenset(s.strip() for s in scope_text.split(";") if s.strip())
        unknown = sorted(scopes - set(SCOPES))
        if not scopes or unknown:
            raise ValueError(
                f"entry {position}: scopes must be among {', '.join(SCOPES)}"
                + (f" (unknown: {', '.join(unknown)})" if unknown else " (none given)")
            )
        entries.append(KeyEntry(bytes.fromhex(digest), scopes))
    return tuple(entries)


def new_key(scopes: Iterable[str] = ("score",)) -> tuple[str, str]:
    """Make a random API key and its ``VITALSENTRY_API_KEYS`` entry.

    Parameters
    ----------
    scopes : iterable of str, default ("score",)
        Scopes among :data:`SCOPES`.

    Returns
    -------
    (str, str)
        The key (43 URL-safe characters, 256 bits) to give the client, and the entry
        line ``SHA256HEX:scope[;scope]`` for the server.

    Raises
    ------
    VitalSentryError
        No scope or an unknown scope.
    """
    wanted = frozenset(scopes)
    unknown = sorted(wanted - set(SCOPES))
    if not wanted or unknown:
        raise VitalSentryError(f"scopes must be among {', '.join(SCOPES)}, got {sorted(wanted)}")
    key = secrets.token_urlsafe(32)
    return key, KeyEntry(hash_key(key), wanted).entry()


def find_key(presented: str, entries: Iterable[KeyEntry]) -> KeyEntry | None:
    """Return the entry of a presented key, comparing with every entry in constant time.

    All entries are compared (no early exit), so the time taken does not depend on
    which entry matches or whether one does.
    """
    digest = hash_key(presented)
    found = None
    for entry in entries:
        if hmac.compare_digest(digest, entry.digest):
            found = entry
    return found


@dataclass
class _Bucket:
    tokens: float
    stamp: float


@dataclass
class RateLimiter:
    """Token bucket per key: ``per_minute`` requests a minute, bursts up to ``per_minute``.

    Parameters
    ----------
    per_minute : int
        Requests a key may make per minute; 0 turns the limit off.
    clock : callable, default time.monotonic
        Seconds, monotonic (a fake clock in tests).
    """

    per_minute: int
    clock: Callable[[], float] = time.monotonic
    _buckets: dict[str, _Bucket] = field(default_factory=dict, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def acquire(self, key_id: str) -> float:
        """Take one token for ``key_id``.

        Returns
        -------
        float
            0.0 when the request may go ahead, otherwise the seconds until a token is
            available (for ``Retry-After``).
        """
        if self.per_minute <= 0:
            return 0.0
        rate = self.per_minute / 60.0
        now = self.clock()
        with self._lock:
            bucket = self._buckets.setdefault(key_id, _Bucket(float(self.per_minute), now))
            bucket.tokens = min(float(self.per_minute), bucket.tokens + (now - bucket.stamp) * rate)
            bucket.stamp = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return 0.0
            return (1.0 - bucket.tokens) / rate


def retry_after_header(wait_s: float) -> str:
    """``Retry-After`` value: whole seconds, rounded up, at least 1."""
    return str(max(1, math.ceil(wait_s)))


TOO_LARGE: Final = "Content Too Large"


class BodyLimitMiddleware:
    """ASGI middleware answering 413 (JSON) to bodies over ``max_bytes``.

    A ``Content-Length`` over the limit is refused before the body is read; a body that
    streams past the limit (chunked, or a lying header) fails as soon as it does.

    Parameters
    ----------
    app : ASGI app
        The wrapped app.
    max_bytes : int
        Largest accepted body.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse or count the request body, then run the app."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await JSONResponse({"detail": TOO_LARGE}, status_code=413)(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise HTTPException(status_code=413, detail=TOO_LARGE)
            return message

        await self.app(scope, counted, send)
