import hashlib

import pytest

from vitalsentry.errors import VitalSentryError
from vitalsentry.serve import security
from vitalsentry.serve.security import (
    KeyEntry,
    RateLimiter,
    find_key,
    hash_key,
    new_key,
    parse_key_entries,
    retry_after_header,
)


def test_new_key_gives_a_random_key_and_its_entry() -> None:
    key, entry = new_key(["admin", "score"])
    other, _ = new_key()
    assert key != other and len(key) == 43
    digest, scopes = entry.split(":")
    assert digest == hashlib.sha256(key.encode()).hexdigest()
    assert scopes == "score;admin"
    assert parse_key_entries(entry) == (KeyEntry(hash_key(key), frozenset({"score", "admin"})),)


def test_new_key_refuses_unknown_or_no_scope() -> None:
    with pytest.raises(VitalSentryError, match="scopes must be among"):
        new_key(["root"])
    with pytest.raises(VitalSentryError, match="scopes must be among"):
        new_key([])


def test_parse_key_entries_reads_several_and_skips_blanks() -> None:
    a, b = "ab" * 32, "CD" * 32
    entries = parse_key_entries(f" {a}:score , ,{b}: embed ; admin ")
    assert [e.digest.hex() for e in entries] == [a, b.lower()]
    assert entries[1].scopes == {"embed", "admin"}
    assert parse_key_entries("") == ()


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("abc:score", "64 hex digits"),
        ("ab" * 32, "64 hex digits"),
        ("zz" * 32 + ":score", "64 hex digits"),
        ("ab" * 32 + ":root", "unknown: root"),
        ("ab" * 32 + ": ;", "none given"),
    ],
)
def test_parse_key_entries_names_the_bad_entry_without_echoing_it(text: str, reason: str) -> None:
    good = "12" * 32 + ":score"
    with pytest.raises(ValueError, match=reason) as info:
        parse_key_entries(f"{good},{text}")
    assert "entry 2" in str(info.value)
    assert text.split(":")[0] not in str(info.value)


def test_find_key_compares_with_every_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    pairs = [new_key(["score"]) for _ in range(4)]
    entries = parse_key_entries(",".join(entry for _, entry in pairs))
    calls = []
    real = security.hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        calls.append(1)
        return real(a, b)

    monkeypatch.setattr(security.hmac, "compare_digest", counting)
    assert find_key(pairs[0][0], entries) == entries[0]
    assert len(calls) == 4
    assert find_key("not a key", entries) is None
    assert find_key(pairs[0][0] + "x", entries) is None


def test_rate_limiter_allows_a_burst_then_refills() -> None:
    now = [100.0]
    limiter = RateLimiter(3, clock=lambda: now[0])
    assert [limiter.acquire("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.acquire("a") == pytest.approx(20.0)
    assert limiter.acquire("b") == 0.0
    now[0] += 20.0
    assert limiter.acquire("a") == 0.0
    assert limiter.acquire("a") > 0


def test_rate_limiter_off_at_zero() -> None:
    limiter = RateLimiter(0)
    assert all(limiter.acquire("a") == 0.0 for _ in range(1000))


@pytest.mark.parametrize(("wait", "header"), [(0.01, "1"), (1.0, "1"), (1.2, "2"), (59.9, "60")])
def test_retry_after_rounds_up_to_whole_seconds(wait: float, header: str) -> None:
    assert retry_after_header(wait) == header
