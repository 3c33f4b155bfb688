"""Service settings, read from the environment (prefix ``VITALSENTRY_``).

=======================================  =================================================
variable                                 meaning (default)
=======================================  =================================================
``VITALSENTRY_BUNDLE``                   model bundle directory (required)
``VITALSENTRY_API_KEYS``                 comma-separated ``SHA256HEX_OF_KEY:scope[;scope]``
``VITALSENTRY_REQUIRE_API_KEY``          refuse requests without a key (true)
``VITALSENTRY_MAX_BODY_BYTES``           request body limit (8 MiB)
``VITALSENTRY_MAX_READINGS``             readings per request, all patients (20000)
``VITALSENTRY_MAX_PATIENTS``             patients per batch or FHIR request (100)
``VITALSENTRY_RATE_LIMIT_PER_MINUTE``    requests per key per minute, 0 = off (600)
``VITALSENTRY_MAX_MC_PASSES``            cap on Monte Carlo dropout passes (30)
``VITALSENTRY_CORS_ORIGINS``             comma-separated allowed origins (none: CORS off)
``VITALSENTRY_TORCH_THREADS``            intra-op threads per server process, 0 = torch's
                                         default (1: a single window gains nothing from
                                         more, and busy cores make extra threads spin)
``VITALSENTRY_MAX_SPAN_WINDOWS``         longest span of one patient's readings, in model
                                         windows ((length - 1) × step each) (100)
``VITALSENTRY_PSEUDONYM_KEY``            secret of the patient pseudonyms in logs (HMAC);
                                         unset: a random one per process, with a warning
``VITALSENTRY_FAILED_KEY_LIMIT_PER_MINUTE``  requests with a missing or unknown key per
                                         client address per minute, 0 = off (30)
``VITALSENTRY_REQUIRE_SIGNATURE``        serve only a bundle signed by a trusted key (false)
``VITALSENTRY_SIGNING_PUBLIC_KEYS``      comma-separated paths of trusted Ed25519 public
                                         keys (PEM, from `vitalsentry sign-keygen`)
``VITALSENTRY_DATABASE_URL``             monitoring database: ``postgresql+psycopg://…`` or
                                         ``sqlite:///FILE`` (an embedded SQLite file under
                                         ``$XDG_DATA_HOME/vitalsentry``)
``VITALSENTRY_READINGS_RETENTION_H``     readings older than this are purged (168)
``VITALSENTRY_HISTORY_RETENTION_D``      scores and closed alarms older than this (365)
``VITALSENTRY_PURGE_EVERY_S``            seconds between purges, 0 = never (3600)
``VITALSENTRY_MAX_FUTURE_S``             readings later than now + this are refused (300)
``VITALSENTRY_MONITOR_MC_PASSES``        MC dropout passes per streamed window, 0 = no
                                         risk band (0)
``VITALSENTRY_SESSION_SECRET``           signs the web view's session cookies (random per
                                         process: set it when running several workers)
``VITALSENTRY_SESSION_MINUTES``          web view session lifetime (720)
=======================================  =================================================
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Final

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from vitalsentry.errors import VitalSentryError
from vitalsentry.serve.security import KeyEntry, parse_key_entries

ENV_PREFIX: Final = "VITALSENTRY_"

MAX_READINGS_CEILING: Final = 200_000
"""Hard ceiling of readings per request (also published in the OpenAPI schema)."""

MAX_PATIENTS_CEILING: Final = 1_000
"""Hard ceiling of patients per request (also published in the OpenAPI schema)."""


class Settings(BaseSettings):
    """Everything the service reads from its environment (see the module docstring)."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    bundle: Path | None = None
    api_keys: Annotated[tuple[KeyEntry, ...], NoDecode] = ()
    require_api_key: bool = True
    max_body_bytes: int = Field(8 * 2**20, ge=1024)
    max_readings: int = Field(20_000, ge=1, le=MAX_READINGS_CEILING)
    max_patients: int = Field(100, ge=1, le=MAX_PATIENTS_CEILING)
    rate_limit_per_minute: int = Field(600, ge=0)
    max_mc_passes: int = Field(30, ge=2)
    cors_origins: Annotated[tuple[str, ...], NoDecode] = ()
    torch_threads: int = Field(1, ge=0)
    max_span_windows: int = Field(100, ge=1, le=100_000)
    pseudonym_key: SecretStr | None = None
    failed_key_limit_per_minute: int = Field(30, ge=0)
    require_signature: bool = False
    signing_public_keys: Annotated[tuple[Path, ...], NoDecode] = ()
    database_url: str | None = None
    readings_retention_h: float = Field(168.0, gt=0)
    history_retention_d: float = Field(365.0, gt=0)
    purge_every_s: float = Field(3600.0, ge=0)
    max_future_s: float = Field(300.0, ge=0)
    monitor_mc_passes: int = Field(0, ge=0, le=100)
    session_secret: str | None = Field(None, min_length=16)
    session_minutes: int = Field(720, ge=1)

    @field_validator("api_keys", mode="before")
    @classmethod
    def _parse_keys(cls, value: Any) -> Any:
        return parse_key_entries(value) if isinstance(value, str) else value

    @field_validator("cors_origins", "signing_public_keys", mode="before")
    @classmethod
    def _split_origins(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(o.strip() for o in value.split(",") if o.strip())
        return value


def load_settings(**overrides: Any) -> Settings:
    """Read the settings from the environment, with keyword overrides.

    Raises
    ------
    VitalSentryError
        A variable is malformed; the one-line message names it (never its value).
    """
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        name = ENV_PREFIX + "_".join(str(part) for part in first["loc"][:1]).upper()
        raise VitalSentryError(f"{name}: {first['msg']}") from None
