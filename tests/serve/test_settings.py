from pathlib import Path

import pytest

from vitalsentry.errors import VitalSentryError
from vitalsentry.serve.security import new_key
from vitalsentry.serve.settings import load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "BUNDLE",
        "API_KEYS",
        "REQUIRE_API_KEY",
        "CORS_ORIGINS",
        "MAX_READINGS",
        "MAX_MC_PASSES",
    ):
        monkeypatch.delenv(f"VITALSENTRY_{name}", raising=False)


def test_defaults_are_safe() -> None:
    settings = load_settings()
    assert settings.require_api_key is True
    assert settings.api_keys == ()
    assert settings.cors_origins == ()
    assert settings.bundle is None
    assert settings.rate_limit_per_minute > 0


def test_reads_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _, first = new_key(["score"])
    _, second = new_key(["admin", "embed"])
    monkeypatch.setenv("VITALSENTRY_BUNDLE", str(tmp_path))
    monkeypatch.setenv("VITALSENTRY_API_KEYS", f"{first},{second}")
    monkeypatch.setenv("VITALSENTRY_CORS_ORIGINS", "https://a.example, https://b.example")
    monkeypatch.setenv("VITALSENTRY_MAX_READINGS", "500")
    settings = load_settings(max_mc_passes=4)
    assert settings.bundle == tmp_path
    assert [e.entry() for e in settings.api_keys] == [first, second]
    assert settings.cors_origins == ("https://a.example", "https://b.example")
    assert settings.max_readings == 500
    assert settings.max_mc_passes == 4


def test_malformed_keys_name_the_variable_not_the_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VITALSENTRY_API_KEYS", "s3cr3t-key-material:score")
    with pytest.raises(VitalSentryError, match=r"^VITALSENTRY_API_KEYS: .*entry 1") as info:
        load_settings()
    assert "s3cr3t" not in str(info.value)


def test_out_of_bounds_limit_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VITALSENTRY_MAX_MC_PASSES", "1")
    with pytest.raises(VitalSentryError, match="VITALSENTRY_MAX_MC_PASSES"):
        load_settings()
