"""Replay a readings file through the streaming API, and what offline scoring expects of it.

:func:`arrival_batches` cuts a readings frame the way a gateway sends it: every
``every_s`` seconds of clock time, each patient's new readings in one request, requests
in time order. :func:`replay` posts them (retrying 429 and 503 answers, and any request
whose answer was lost, which is safe because appends are idempotent).
:func:`offline_reference` is what ``vitalsentry score`` and the bundle's alarm policy
give on the same frame; :func:`compare` checks a service's timelines against it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import httpx
import numpy as np
import pandas as pd

from vitalsentry.data.schema import CHANNELS, PATIENT_COLUMN, TIMESTAMP_COLUMN
from vitalsentry.errors import VitalSentryError
from vitalsentry.pipeline import VitalRiskPipeline
from vitalsentry.risk.alarms import alarm_episodes

RETRYABLE: Final = frozenset({429, 502, 503, 504})
Episode = tuple[float, float, float | None]


@dataclass(frozen=True)
class Batch:
    """One request of the replay: a patient's readings of one period."""

    patient_id: str
    readings: list[dict[str, Any]]


def arrival_batches(frame: pd.DataFrame, every_s: float = 60.0) -> list[Batch]:
    """Cut a readings frame into per-patient requests in arrival order.

    Parameters
    ----------
    frame : pandas.DataFrame
        Readings frame (``patient_id``, UTC ``timestamp``, channel columns).
    every_s : float, default 60
        Sending period: readings of ``[k·every_s, (k+1)·every_s)`` go together.

    Returns
    -------
    list of Batch
        Ordered by period, then patient.
    """
    channels = [c for c in CHANNELS if c in frame.columns]
    t_ns = frame[TIMESTAMP_COLUMN].array.as_unit("ns").asi8
    period = t_ns // int(every_s * 1e9)
    stamps = pd.DatetimeIndex(frame[TIMESTAMP_COLUMN]).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    values = frame[channels].to_numpy(dtype=np.float64, na_value=np.nan)
    codes, names = pd.factorize(frame[PATIENT_COLUMN].astype(str), sort=True)
    order = np.lexsort((t_ns, codes, period))
    bounds = np.flatnonzero((np.diff(period[order]) != 0) | (np.diff(codes[order]) != 0)) + 1
    out = []
    for rows in np.split(order, bounds) if order.size else []:
        readings = []
        for i in rows:
            measured = {
                c: float(v) for c, v in zip(channels, values[i], strict=True) if not math.isnan(v)
            }
            if measured:
                readings.append({"timestamp": stamps[i], **measured})
        if readings:
            out.append(Batch(str(names[codes[rows[0]]]), readings))
    return out


@dataclass
class ReplayStats:
    """Counts of a replay."""

    requests: int = 0
    accepted: int = 0
    duplicates: int = 0
    windows: int = 0
    retries: int = 0
    errors: list[str] = field(default_factory=list)


def replay(
    client: httpx.Client,
    batches: Sequence[Batch],
    *,
    max_tries: int = 20,
    pause_s: float = 0.5,
    on_batch: Callable[[int], None] | None = None,
) -> ReplayStats:
    """Post every batch in order, retrying what may succeed later.

    Parameters
    ----------
    client : httpx.Client
        With the base URL and the ``X-API-Key`` header set.
    batches : sequence of Batch
        From :func:`arrival_batches`.
    max_tries : int, default 20
        Attempts per batch on 429/502/503/504 or a lost connection.
    pause_s : float, default 0.5
        Wait between attempts (or the server's ``Retry-After`` when shorter).
    on_batch : callable, optional
        Called with the index of each batch once it is acknowledged.

    Returns
    -------
    ReplayStats
        Counts; ``errors`` lists the batches refused with a 4xx (the replay goes on).

    Raises
    ------
    VitalSentryError
        A batch still failed after ``max_tries`` attempts.
    """
    stats = ReplayStats()
    for i, batch in enumerate(batches):
        answer = _post(client, batch, max_tries, pause_s, stats)
        stats.requests += 1
        if answer.status_code >= 400:
            stats.errors.append(f"{batch.patient_id}: {answer.status_code} {answer.text[:200]}")
        else:
            body = answer.json()
            stats.accepted += body["accepted"]
            stats.duplicates += body["duplicates"]
            stats.windows += len(body["windows_scored"])
        if on_batch is not None:
            on_batch(i)
    return stats


def _post(
    client: httpx.Client, batch: Batch, max_tries: int, pause_s: float, stats: ReplayStats
) -> httpx.Response:
    url = f"/v1/patients/{batch.patient_id}/readings"
    for attempt in range(max_tries):
        if attempt:
            stats.retries += 1
        try:
            answer = client.post(url, json={"readings": batch.readings})
        except httpx.TransportError:
            time.sleep(pause_s)
            continue
        if answer.status_code not in RETRYABLE:
            return answer
        time.sleep(min(pause_s, float(answer.headers.get("Retry-After", pause_s))))
    raise VitalSentryError(
        f"replay: patient {batch.patient_id} not acknowledged after {max_tries} tries"
    )


@dataclass(frozen=True)
class Reference:
    """Offline scores and alarm episodes of a frame.

    Attributes
    ----------
    scores : pandas.DataFrame
        ``patient_id, start_s, end_s, risk, level`` per window, sorted.
    episodes : dict of str to list of Episode
        Per patient: (started_s, last_on_s, cleared_s or None).
    """

    scores: pd.DataFrame
    episodes: dict[str, list[Episode]]


def offline_reference(pipeline: VitalRiskPipeline, frame: pd.DataFrame) -> Reference:
    """Return what ``vitalsentry score`` and the bundle's alarm policy give on ``frame``."""
    table = pipeline.score_frame(frame)
    scores = pd.DataFrame(
        {
            PATIENT_COLUMN: table[PATIENT_COLUMN].astype(str),
            "start_s": table["window_start"].array.as_unit("ns").asi8 / 1e9,
            "end_s": table["window_end"].array.as_unit("ns").asi8 / 1e9,
            "risk": table["risk"],
            "level": table["level"].astype(str),
        }
    ).sort_values([PATIENT_COLUMN, "start_s"], ignore_index=True)
    episodes = {
        str(patient): alarm_episodes(
            part["end_s"].to_numpy(), (part["level"] == "high").to_numpy(), pipeline.alarm_policy
        )
        for patient, part in scores.groupby(PATIENT_COLUMN, sort=True)
    }
    return Reference(scores, episodes)


def served_reference(client: httpx.Client, patients: Sequence[str]) -> Reference:
    """Return the same tables, read from a service's timelines (every window and episode)."""
    rows, episodes = [], {}
    for patient in patients:
        answer = client.get(
            f"/v1/patients/{patient}/timeline",
            params={"from": "1970-01-01T00:00:00Z", "to": "2199-12-31T00:00:00Z", "max_points": 10},
        )
        answer.raise_for_status()
        body = answer.json()
        rows += [
            {
                PATIENT_COLUMN: patient,
                "start_s": _epoch(s["window_start"]),
                "end_s": _epoch(s["window_end"]),
                "risk": s["risk"],
                "level": s["level"],
            }
            for s in body["scores"]
        ]
        episodes[patient] = [
            (
                _epoch(a["started"]),
                _epoch(a["last_on"]),
                None if a["cleared"] is None else _epoch(a["cleared"]),
            )
            for a in body["alarms"]
        ]
    columns = [PATIENT_COLUMN, "start_s", "end_s", "risk", "level"]
    scores = pd.DataFrame(rows, columns=columns).sort_values(
        [PATIENT_COLUMN, "start_s"], ignore_index=True
    )
    return Reference(scores, {p: e for p, e in episodes.items() if e})


def _epoch(text: str) -> float:
    return pd.Timestamp(text).as_unit("ns").value / 1e9


def compare(expected: Reference, served: Reference, *, risk_tol: float = 1e-6) -> list[str]:
    """Differences between two references (empty when they agree).

    Window times must agree to the microsecond (the API's resolution), levels and
    alarm episodes exactly, risks within ``risk_tol`` (the batched forward pass of a
    whole file and the one-window passes of a stream round differently, about 1e-7).
    """
    a, b = expected.scores, served.scores
    problems = []
    if len(a) != len(b):
        problems.append(f"{len(a)} windows offline, {len(b)} served")
    elif not (
        (a[PATIENT_COLUMN].to_numpy() == b[PATIENT_COLUMN].to_numpy()).all()
        and np.allclose(a["start_s"], b["start_s"], rtol=0, atol=1e-6)
    ):
        problems.append("the windows differ")
    else:
        if (a["level"].to_numpy() != b["level"].to_numpy()).any():
            problems.append("risk levels differ")
        worst = float(np.max(np.abs(a["risk"].to_numpy() - b["risk"].to_numpy()), initial=0.0))
        if worst > risk_tol:
            problems.append(f"risks differ by up to {worst:.3g}")
    mine = {p: e for p, e in expected.episodes.items() if e}
    if not _same_episodes(mine, served.episodes):
        problems.append("alarm episodes differ")
    return problems


def _same_episodes(a: dict[str, list[Episode]], b: dict[str, list[Episode]]) -> bool:
    def rounded(episodes: dict[str, list[Episode]]) -> Iterator[tuple[Any, ...]]:
        for patient in sorted(episodes):
            for episode in episodes[patient]:
                yield (patient, *(None if t is None else round(t, 6) for t in episode))

    return list(rounded(a)) == list(rounded(b))
