"""MonitorStore: typed access to the monitoring database (what the routes and the web view read).

Reads (:meth:`MonitorStore.ward`, :meth:`~MonitorStore.timeline`, …) return frozen
dataclasses, never ORM rows. Writes of patients' streams happen in a
:class:`WriteTransaction` (:meth:`MonitorStore.transaction`), through one
:class:`PatientTransaction` per patient: it locks the patient's state row (``SELECT …
FOR UPDATE`` on PostgreSQL; on SQLite the transaction takes the write lock with ``BEGIN
IMMEDIATE``), so any number of workers sharing the database see one order of appends per
patient, and everything the transaction writes is committed together or not at all. Every
method turns database failures into :class:`~vitalsentry.monitor.db.DatabaseUnavailableError`.

The write path runs SQLAlchemy Core statements built once (no ORM objects, no unit of
work): a patient's state is a plain :class:`StreamState` loaded with its latest score and
active alarm episode in one query, and the states (and changed episodes) of every patient
of a transaction are written back in one ``UPDATE`` each just before the commit; readings
are inserted by the driver's ``executemany`` on plain tuples.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, Final

import numpy as np
from sqlalchemy import (
    CompoundSelect,
    Connection,
    Engine,
    Row,
    Select,
    bindparam,
    case,
    delete,
    func,
    insert,
    literal,
    select,
    text,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from vitalsentry.errors import VitalSentryError
from vitalsentry.monitor import db
from vitalsentry.monitor.db import (
    DatabaseUnavailableError,
    default_url,
    make_engine,
    migrate,
    unavailable,
    writer,
)
from vitalsentry.monitor.tables import (
    AlarmEpisodeRow,
    PatientStateRow,
    ReadingRow,
    WindowScoreRow,
)

US: Final = 1_000_000
"""Microseconds per second."""

ReadingKey = tuple[str, int]
"""(channel, t_us) of a stored reading."""


class UnknownAlarmError(VitalSentryError):
    """No alarm episode has this id (answered with 404)."""


@dataclass(frozen=True)
class AlarmEpisode:
    """An alarm episode: raised at the end of ``started_s``'s window, on until ``last_on_s``.

    Attributes
    ----------
    id : int
        Identifier (for acknowledging).
    patient_id : str
        Patient.
    started_s, last_on_s : float
        Epoch seconds: end of the window that raised it, end of the latest window with it on.
    cleared_s : float or None
        End of the window that cleared it; None while active.
    peak_risk : float
        Highest risk of a window during the episode.
    acked_by : str or None
        Key id (or user) that acknowledged it.
    acked_at_s : float or None
        When it was acknowledged (server clock, epoch seconds).
    """

    id: int
    patient_id: str
    started_s: float
    last_on_s: float
    cleared_s: float | None
    peak_risk: float
    acked_by: str | None
    acked_at_s: float | None

    @property
    def active(self) -> bool:
        """Whether the alarm is still on."""
        return self.cleared_s is None


@dataclass(frozen=True)
class WindowScore:
    """A scored window (see :class:`~vitalsentry.monitor.tables.WindowScoreRow`)."""

    start_s: float
    end_s: float
    risk: float
    level: str
    anomaly_score: float
    top_vital: str
    contributions: dict[str, float]
    news2: int | None
    news2_level: str | None
    risk_mean: float | None
    risk_std: float | None
    alarm_on: bool
    model_version: str


@dataclass(frozen=True)
class PatientSummary:
    """A patient's current state (a row of the ward overview).

    Attributes
    ----------
    patient_id : str
        Patient.
    last_reading_s : float or None
        Time of the newest reading.
    latest : WindowScore or None
        The newest scored window (None before the first).
    alarm : AlarmEpisode or None
        The active alarm episode.
    """

    patient_id: str
    last_reading_s: float | None
    latest: WindowScore | None
    alarm: AlarmEpisode | None


@dataclass(frozen=True)
class ChannelSeries:
    """One channel's readings over a time range, downsampled when dense.

    Raw (``bucket_s`` None): one point per reading, ``low == high``, ``count`` 1. Bucketed:
    one point per non-empty bucket of ``bucket_s`` seconds, at the bucket's start, with
    the minimum, maximum and number of readings in it.
    """

    channel: str
    t_s: tuple[float, ...]
    low: tuple[float, ...]
    high: tuple[float, ...]
    count: tuple[int, ...]
    bucket_s: float | None


@dataclass(frozen=True)
class Timeline:
    """Return a patient's scores, alarm episodes and readings over ``[start_s, end_s)``."""

    patient_id: str
    start_s: float
    end_s: float
    scores: tuple[WindowScore, ...]
    alarms: tuple[AlarmEpisode, ...]
    readings: tuple[ChannelSeries, ...]


@dataclass
class StreamState:
    """A patient's stream state as a write transaction changes it (see ``PatientStateRow``).

    Written back when the transaction commits (:meth:`WriteTransaction.flush`).
    """

    patient_id: str
    origin_us: int | None
    next_window: int
    sealed: dict[str, int]
    latest: dict[str, Any]
    on_oxygen: bool
    consciousness_alert: bool
    last_reading_us: int | None
    score_id: int | None
    alarm_on: bool
    alarm_quiet: int
    alarm_recent: str
    alarm_id: int | None
    updated_s: float


def _episode(row: Any) -> AlarmEpisode:
    """Return the alarm episode of anything with its columns as attributes (ORM or Core row)."""
    return AlarmEpisode(**{f.name: getattr(row, f.name) for f in _EPISODE_FIELDS})


def _score(row: Any) -> WindowScore:
    """Return the scored window of anything with its columns as attributes (ORM or Core row)."""
    values = {f.name: getattr(row, f.name) for f in _SCORE_FIELDS}
    return WindowScore(**values | {"contributions": dict(values["contributions"])})


_EPISODE_FIELDS: Final = dataclasses.fields(AlarmEpisode)
_SCORE_FIELDS: Final = dataclasses.fields(WindowScore)


# The hot statements of an append, built once: building a statement and its cache key
# costs ten times what SQLite takes to run these (pid, lo, hi, t are bound per call).
_READINGS = ReadingRow.metadata.tables[ReadingRow.__tablename__]
_OF_PATIENT = ReadingRow.patient_id == bindparam("pid")
_STORED = select(ReadingRow.channel, ReadingRow.t_us, ReadingRow.value).where(
    _OF_PATIENT, ReadingRow.t_us.between(bindparam("lo"), bindparam("hi"))
)
_READING_COLUMNS: Final = ("patient_id", "channel", "t_us", "value")


@functools.cache
def _insert_readings(paramstyle: str) -> str:
    """Return the readings ``INSERT`` in the driver's own placeholders (``?`` or ``%s``).

    Run with ``exec_driver_sql`` on plain tuples: SQLAlchemy's per-row parameter
    processing costs more than SQLite takes to store the row.
    """
    marker = "?" if paramstyle == "qmark" else "%s"
    return (
        f"INSERT INTO {_READINGS.name} ({', '.join(_READINGS.c[c].name for c in _READING_COLUMNS)})"
        f" VALUES ({', '.join([marker] * len(_READING_COLUMNS))})"
    )


_FIRST_TIME = select(func.min(ReadingRow.t_us)).where(_OF_PATIENT)
_STATES = PatientStateRow.metadata.tables[PatientStateRow.__tablename__]
_SCORES = WindowScoreRow.metadata.tables[WindowScoreRow.__tablename__]
_ALARMS = AlarmEpisodeRow.metadata.tables[AlarmEpisodeRow.__tablename__]
_STATE_FIELDS: Final = tuple(f for f in dataclasses.fields(StreamState) if f.name != "patient_id")
_STATE_COLUMNS: Final = tuple(_STATES.c[f.name] for f in dataclasses.fields(StreamState))
_LOCK_STATE = (  # the state, its latest score and its active alarm episode, in column order
    select(*_STATE_COLUMNS, *_SCORES.c, *_ALARMS.c)
    .select_from(
        _STATES.outerjoin(_SCORES, _SCORES.c.id == _STATES.c.score_id).outerjoin(
            _ALARMS, _ALARMS.c.id == _STATES.c.alarm_id
        )
    )
    .where(_STATES.c.patient_id == bindparam("pid"))
    .with_for_update(of=_STATES)
)
_UPDATE_STATE = update(_STATES).where(_STATES.c.patient_id == bindparam("pid"))
_INSERT_SCORE = insert(_SCORES)
_INSERT_ALARM = insert(_ALARMS)
_UPDATE_ALARM = update(_ALARMS).where(_ALARMS.c.id == bindparam("aid"))


@functools.cache
def _values_at(channels: tuple[str, ...]) -> Select[Any]:
    """Return the statement of each channel's latest value at or before ``t`` (one row)."""
    return select(
        *(
            select(ReadingRow.value)
            .where(_OF_PATIENT, ReadingRow.channel == c, ReadingRow.t_us <= bindparam("t"))
            .order_by(ReadingRow.t_us.desc())
            .limit(1)
            .scalar_subquery()
            for c in channels
        )
    )


@functools.cache
def _times_near(channels: tuple[str, ...], before: bool) -> Select[Any]:
    """Return the statement of each channel's reading time nearest ``t`` (one row).

    ``before``: the latest at or before ``t``; otherwise the earliest at or after it.
    """
    near = (
        func.max(ReadingRow.t_us) if before else func.min(ReadingRow.t_us),
        ReadingRow.t_us <= bindparam("t") if before else ReadingRow.t_us >= bindparam("t"),
    )
    return select(
        *(
            select(near[0]).where(_OF_PATIENT, ReadingRow.channel == c, near[1]).scalar_subquery()
            for c in channels
        )
    )


_SERIES_ROW: Final = np.dtype([("t_us", np.int64), ("column", np.intp), ("value", np.float64)])
"""A row of :func:`_series`: time, the channel's position in its ``channels``, value."""


@functools.cache
def _series(channels: tuple[str, ...]) -> CompoundSelect[int, int, float]:
    """Return the statement that reads the readings of ``channels`` deciding ``first``–``last``.

    Per channel: its readings from ``first`` to ``last``, its latest from ``lo`` to
    ``first`` and its earliest from ``last`` to ``hi`` (an index lookup each); rows as
    :data:`_SERIES_ROW`.
    """

    def one(column: int, channel: str) -> Select[int, int, float]:
        mine = (_OF_PATIENT, ReadingRow.channel == channel)
        before = select(func.max(ReadingRow.t_us)).where(
            *mine, ReadingRow.t_us.between(bindparam("lo"), bindparam("first"))
        )
        after = select(func.min(ReadingRow.t_us)).where(
            *mine, ReadingRow.t_us.between(bindparam("last"), bindparam("hi"))
        )
        return select(ReadingRow.t_us, literal(column), ReadingRow.value).where(
            *mine,
            ReadingRow.t_us.between(
                func.coalesce(before.scalar_subquery(), bindparam("first")),
                func.coalesce(after.scalar_subquery(), bindparam("last")),
            ),
        )

    return union_all(*(one(j, c) for j, c in enumerate(channels)))


class PatientTransaction:
    """One patient's write transaction, its state row locked (see the module docstring).

    Attributes
    ----------
    core : Connection
        The transaction's connection.
    state : StreamState
        The locked state (created on the patient's first append); changes to it are
        written at commit.
    score : WindowScore or None
        The window ``state.score_id`` pointed to when the state was locked.
    episode : AlarmEpisode or None
        The alarm episode ``state.alarm_id`` points to, as this transaction leaves it
        (``open_alarm``, ``change_alarm``).
    """

    def __init__(
        self,
        core: Connection,
        state: StreamState,
        score: WindowScore | None,
        episode: AlarmEpisode | None,
    ) -> None:
        self.core = core
        self.state = state
        self.score = score
        self.episode = episode
        self.episode_changed = False

    def stored(self, lo_us: int, hi_us: int) -> dict[ReadingKey, float]:
        """Return the stored readings with ``lo_us ≤ t_us ≤ hi_us``: ``{(channel, t_us): value}``."""
        rows = self.core.execute(_STORED, {"pid": self.state.patient_id, "lo": lo_us, "hi": hi_us})
        return {(channel, t_us): value for channel, t_us, value in rows}

    def insert(self, readings: Sequence[tuple[str, int, float]]) -> None:
        """Insert new readings ``(channel, t_us, value)`` (keys not stored yet)."""
        if readings:
            pid = self.state.patient_id
            self.core.exec_driver_sql(
                _insert_readings(self.core.dialect.paramstyle),
                [(pid, c, t, v) for c, t, v in readings],
            )

    def first_time(self) -> int | None:
        """Oldest stored reading time (µs) of the patient, any channel."""
        value = self.core.scalar(_FIRST_TIME, {"pid": self.state.patient_id})
        return None if value is None else int(value)

    def values_at(self, channels: Sequence[str], t_us: int) -> dict[str, float | None]:
        """Value of each channel's latest reading at or before ``t_us`` (None: no such)."""
        query = _values_at(tuple(channels))
        row = self.core.execute(query, {"pid": self.state.patient_id, "t": t_us}).one()
        return {c: None if v is None else float(v) for c, v in zip(channels, row, strict=True)}

    def times_near(
        self, channels: Sequence[str], t_us: int, *, before: bool
    ) -> dict[str, int | None]:
        """Return each channel's reading time (µs) nearest ``t_us`` (None: no such reading).

        ``before``: the latest at or before ``t_us``; otherwise the earliest at or after it.
        """
        query = _times_near(tuple(channels), before)
        row = self.core.execute(query, {"pid": self.state.patient_id, "t": t_us}).one()
        return {c: None if t is None else int(t) for c, t in zip(channels, row, strict=True)}

    def series(
        self, lo_us: int, hi_us: int, channels: Sequence[str], decide: tuple[int, int]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Return the readings of ``channels`` from ``lo_us`` to ``hi_us`` that decide ``decide``.

        A channel's value at a grid step in ``decide = (first_us, last_us)`` depends only
        on its readings in that range and its nearest one on either side (interpolation,
        gaps and carrying forward look no farther), so only those are read.

        Returns
        -------
        (numpy.ndarray, numpy.ndarray)
            (n,) sorted µs times and (n, C) values, NaN where a channel was not read.
        """
        query = _series(tuple(channels))
        first, last = decide
        params = {
            "pid": self.state.patient_id,
            "lo": lo_us,
            "hi": hi_us,
            "first": first,
            "last": last,
        }
        found = self.core.execute(query, params).all()
        rows = np.fromiter(map(tuple, found), _SERIES_ROW, len(found))
        times, row_of = np.unique(rows["t_us"], return_inverse=True)
        values = np.full((len(times), len(channels)), np.nan)
        values[row_of, rows["column"]] = rows["value"]
        return times, values

    def add_score(self, score: WindowScore) -> int:
        """Store a scored window; return its id."""
        values = {"patient_id": self.state.patient_id, "scored_at_s": time.time()}
        key = self.core.execute(_INSERT_SCORE, values | score.__dict__).inserted_primary_key
        assert key is not None
        return int(key[0])

    def open_alarm(self, at_s: float, risk: float) -> AlarmEpisode:
        """Start an alarm episode at a window end; it becomes :attr:`episode`."""
        pid = self.state.patient_id
        values = {"patient_id": pid, "started_s": at_s, "last_on_s": at_s, "peak_risk": risk}
        key = self.core.execute(_INSERT_ALARM, values).inserted_primary_key
        assert key is not None
        self.episode = AlarmEpisode(int(key[0]), pid, at_s, at_s, None, risk, None, None)
        return self.episode

    def change_alarm(self, **changes: float | None) -> None:
        """Change :attr:`episode`: ``last_on_s``, ``peak_risk``, ``cleared_s`` (written at commit)."""
        assert self.episode is not None
        self.episode = dataclasses.replace(self.episode, **changes)  # type: ignore[arg-type]
        self.episode_changed = True


def patient_summary(tx: PatientTransaction, newest: WindowScore | None = None) -> PatientSummary:
    """Return the state of the transaction's patient as it stands.

    ``newest``: the window the state points to, when the transaction stored it (otherwise
    the state still points to the window it was locked with).
    """
    state, episode = tx.state, tx.episode
    alarm = episode if episode is not None and episode.id == state.alarm_id else None
    return _summary(state, tx.score if newest is None else newest, alarm)


def _summary(
    state: StreamState | PatientStateRow, score: WindowScore | None, alarm: AlarmEpisode | None
) -> PatientSummary:
    return PatientSummary(
        patient_id=state.patient_id,
        last_reading_s=None if state.last_reading_us is None else state.last_reading_us / US,
        latest=score,
        alarm=alarm,
    )


class WriteTransaction:
    """A write transaction of :meth:`MonitorStore.transaction`: lock patients, drop refused changes.

    Parameters
    ----------
    core : Connection
        The transaction's connection.
    dialect : str
        ``"sqlite"`` or ``"postgresql"`` (how a new patient's state row is created).
    """

    def __init__(self, core: Connection, dialect: str) -> None:
        self.core = core
        self.dialect = dialect
        self._patients: dict[str, PatientTransaction] = {}

    def patient(self, patient_id: str) -> PatientTransaction:
        """Lock (creating it if new) the patient's state row for the rest of the transaction.

        Several workers may append to one database: a transaction that locks several
        patients locks them in one order (sorted ids), so no two wait on each other.
        """
        tx = _locked(self.core, patient_id)
        if tx is None:  # a new patient (another worker may be creating it too)
            self.core.execute(self._new_state(patient_id))
            tx = _locked(self.core, patient_id)
        assert tx is not None
        tx.state.updated_s = time.time()
        self._patients[patient_id] = tx
        return tx

    def discard(self, tx: PatientTransaction) -> None:
        """Drop the pending changes to a patient's state (its append was refused)."""
        del self._patients[tx.state.patient_id]

    def flush(self) -> None:
        """Write the states and changed alarm episodes of the transaction's patients."""
        states = [  # shallow: the JSON columns are serialised as they are bound
            {f.name: getattr(tx.state, f.name) for f in _STATE_FIELDS}
            | {"pid": tx.state.patient_id}
            for tx in self._patients.values()
        ]
        if states:
            self.core.execute(_UPDATE_STATE, states)
        episodes = [
            {
                "aid": e.id,
                "last_on_s": e.last_on_s,
                "peak_risk": e.peak_risk,
                "cleared_s": e.cleared_s,
            }
            for tx in self._patients.values()
            if tx.episode_changed and (e := tx.episode) is not None
        ]
        if episodes:
            self.core.execute(_UPDATE_ALARM, episodes)

    def _new_state(self, patient_id: str) -> Any:
        """Return the statement that creates a patient's state row unless it exists."""
        upsert = postgresql.insert if self.dialect == "postgresql" else sqlite.insert
        return (
            upsert(PatientStateRow)
            .values(
                patient_id=patient_id,
                next_window=0,
                sealed={},
                latest={},
                on_oxygen=False,
                consciousness_alert=True,
                alarm_on=False,
                alarm_quiet=0,
                alarm_recent="",
                updated_s=time.time(),
            )
            .on_conflict_do_nothing(index_elements=["patient_id"])
        )


class MonitorStore:
    """The monitoring database (see the module docstring).

    Parameters
    ----------
    engine : sqlalchemy.Engine
        From :func:`~vitalsentry.monitor.db.make_engine`, schema migrated.

    Attributes
    ----------
    row_locks : bool
        Whether write transactions lock patients row by row (PostgreSQL: they must lock
        them in one order); SQLite's writer holds the whole database instead.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.row_locks = engine.dialect.name != "sqlite"
        self._writer = writer(engine)
        self._write_lock = None if self.row_locks else threading.Lock()

    @classmethod
    def open(cls, url: str | None = None) -> MonitorStore:
        """Connect to ``url`` (default: the embedded SQLite file) and migrate its schema."""
        engine = make_engine(url or default_url())
        migrate(engine)
        return cls(engine)

    def close(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()

    @contextlib.contextmanager
    def _write(self) -> Iterator[Connection]:
        """Open a write transaction; on SQLite the process's writers queue on a lock first.

        SQLite admits one writer at a time; threads that wait in SQLite's busy handler
        sleep in growing steps (up to 100 ms), while a lock hands over at once. Other
        processes still wait in the busy handler (``busy_timeout``).
        """
        if self._write_lock is not None and not self._write_lock.acquire(timeout=db.WAIT_S):
            raise DatabaseUnavailableError("the database is busy: too many writers waiting")
        try:
            with unavailable(), self._writer.begin() as connection:
                yield connection
        finally:
            if self._write_lock is not None:
                self._write_lock.release()

    @contextlib.contextmanager
    def _read(self) -> Iterator[Session]:
        with (
            unavailable(),
            Session(self.engine, expire_on_commit=False) as session,
            session.begin(),
        ):
            yield session

    @contextlib.contextmanager
    def transaction(self) -> Iterator[WriteTransaction]:
        """Open a write transaction for one or more patients' streams; commit what it writes.

        Raises
        ------
        DatabaseUnavailableError
            The database is unreachable or stayed locked for too long.
        """
        with self._write() as connection:
            transaction = WriteTransaction(connection, self.engine.dialect.name)
            yield transaction
            transaction.flush()

    @contextlib.contextmanager
    def patient_transaction(self, patient_id: str) -> Iterator[PatientTransaction]:
        """Lock (creating it if new) one patient's state and commit what the block writes."""
        with self.transaction() as tx:
            yield tx.patient(patient_id)

    def ping(self) -> float:
        """Round trip of a trivial query, in seconds."""
        start = time.perf_counter()
        with self._read() as session:
            session.execute(text("SELECT 1"))
        return time.perf_counter() - start

    def patient(self, patient_id: str) -> PatientSummary | None:
        """Return a patient's current state, or None if unknown."""
        found = self._summaries(PatientStateRow.patient_id == patient_id)
        return found[0] if found else None

    def ward(self) -> list[PatientSummary]:
        """Every patient's state: active alarms first, then by risk (highest first), then id."""
        return self._summaries(None)

    def _summaries(self, where: Any) -> list[PatientSummary]:
        query = (
            select(PatientStateRow, WindowScoreRow, AlarmEpisodeRow)
            .outerjoin(WindowScoreRow, WindowScoreRow.id == PatientStateRow.score_id)
            .outerjoin(AlarmEpisodeRow, AlarmEpisodeRow.id == PatientStateRow.alarm_id)
            .order_by(
                case((PatientStateRow.alarm_id.is_(None), 1), else_=0),
                case((WindowScoreRow.risk.is_(None), 1), else_=0),
                WindowScoreRow.risk.desc(),
                PatientStateRow.patient_id,
            )
        )
        if where is not None:
            query = query.where(where)
        with self._read() as session:
            return [
                _summary(
                    state,
                    None if score is None else _score(score),
                    None if alarm is None else _episode(alarm),
                )
                for state, score, alarm in session.execute(query)
            ]

    def active_alarms(self) -> int:
        """Count the active alarm episodes."""
        with self._read() as session:
            return int(
                session.scalar(select(func.count()).where(AlarmEpisodeRow.cleared_s.is_(None))) or 0
            )

    def timeline(
        self, patient_id: str, start_s: float, end_s: float, max_points: int = 2000
    ) -> Timeline:
        """Return a patient's scores, alarm episodes and readings over ``[start_s, end_s)``.

        Parameters
        ----------
        patient_id : str
            Patient.
        start_s, end_s : float
            Epoch seconds; ``end_s > start_s``.
        max_points : int, default 2000
            A channel with more readings than this in the range is downsampled in the
            database to ``max_points`` buckets of equal width (min, max and count each).

        Returns
        -------
        Timeline
            Windows ending in the range, episodes overlapping it, readings per channel.
        """
        lo, hi = int(np.floor(start_s * US)), int(np.ceil(end_s * US))
        with self._read() as session:
            scores = session.scalars(
                select(WindowScoreRow)
                .where(
                    WindowScoreRow.patient_id == patient_id,
                    WindowScoreRow.end_s >= start_s,
                    WindowScoreRow.end_s < end_s,
                )
                .order_by(WindowScoreRow.end_s)
            ).all()
            alarms = session.scalars(
                select(AlarmEpisodeRow)
                .where(
                    AlarmEpisodeRow.patient_id == patient_id,
                    AlarmEpisodeRow.started_s < end_s,
                    AlarmEpisodeRow.last_on_s >= start_s,
                )
                .order_by(AlarmEpisodeRow.started_s)
            ).all()
            series = _channel_series(session, patient_id, lo, hi, max_points)
        return Timeline(
            patient_id=patient_id,
            start_s=start_s,
            end_s=end_s,
            scores=tuple(_score(s) for s in scores),
            alarms=tuple(_episode(a) for a in alarms),
            readings=series,
        )

    def ack(self, alarm_id: int, by: str, at_s: float | None = None) -> AlarmEpisode:
        """Acknowledge an alarm episode (the first acknowledgement is kept).

        Raises
        ------
        UnknownAlarmError
            No episode has this id.
        """
        with self._write() as connection:
            row = connection.execute(
                select(_ALARMS).where(_ALARMS.c.id == alarm_id).with_for_update()
            ).one_or_none()
            if row is None:
                raise UnknownAlarmError(f"alarm_id: no alarm episode {alarm_id}")
            episode = _episode(row)
            if episode.acked_at_s is None:
                acked = {"acked_by": by, "acked_at_s": time.time() if at_s is None else at_s}
                connection.execute(_UPDATE_ALARM, {"aid": alarm_id} | acked)
                episode = dataclasses.replace(episode, **acked)  # type: ignore[arg-type]
            return episode

    def delete_patient(self, patient_id: str) -> dict[str, int]:
        """Remove every stored row of a patient; returns rows deleted per table."""
        tables = (ReadingRow, WindowScoreRow, AlarmEpisodeRow, PatientStateRow)
        with self._write() as connection:
            return {
                table.__tablename__: _rowcount(
                    connection.execute(delete(table).where(table.patient_id == patient_id))
                )
                for table in tables
            }

    def purge(self, readings_before_s: float, history_before_s: float) -> dict[str, int]:
        """Delete readings older than one horizon, and scores and closed alarms older than another.

        Active alarm episodes and the window each patient's state points to are kept.
        """
        keep = select(PatientStateRow.score_id).where(PatientStateRow.score_id.is_not(None))
        with self._write() as connection:
            return {
                "readings": _rowcount(
                    connection.execute(
                        delete(ReadingRow).where(ReadingRow.t_us < int(readings_before_s * US))
                    )
                ),
                "window_scores": _rowcount(
                    connection.execute(
                        delete(WindowScoreRow).where(
                            WindowScoreRow.end_s < history_before_s,
                            WindowScoreRow.id.not_in(keep),
                        )
                    )
                ),
                "alarm_episodes": _rowcount(
                    connection.execute(
                        delete(AlarmEpisodeRow).where(
                            AlarmEpisodeRow.last_on_s < history_before_s,
                            AlarmEpisodeRow.cleared_s.is_not(None),
                        )
                    )
                ),
            }


def _locked(core: Connection, patient_id: str) -> PatientTransaction | None:
    """Lock the patient's state row and load it with its latest score and active alarm episode.

    Returns None for a patient without a state row.
    """
    row = core.execute(_LOCK_STATE, {"pid": patient_id}).one_or_none()
    if row is None:
        return None
    state = StreamState(*row[: len(_STATE_COLUMNS)])
    score, alarm = (
        _joined(row, len(_STATE_COLUMNS), _SCORES),
        _joined(row, len(_STATE_COLUMNS) + len(_SCORES.c), _ALARMS),
    )
    return PatientTransaction(
        core,
        state,
        None if score is None else _score(score),
        None if alarm is None else _episode(alarm),
    )


def _joined(row: Row[Any], first: int, table: Any) -> SimpleNamespace | None:
    """Return the columns of ``table`` in ``row`` from position ``first`` (None: no joined row)."""
    values = row[first : first + len(table.c)]
    return (
        None
        if values[0] is None
        else SimpleNamespace(**dict(zip(table.c.keys(), values, strict=True)))
    )


def _rowcount(result: Any) -> int:
    return int(result.rowcount)


def _channel_series(
    session: Session, patient_id: str, lo: int, hi: int, max_points: int
) -> tuple[ChannelSeries, ...]:
    """Per channel: raw readings, or min/max/count per bucket when over ``max_points``."""
    in_range = (
        ReadingRow.patient_id == patient_id,
        ReadingRow.t_us >= lo,
        ReadingRow.t_us < hi,
    )
    counts: dict[str, int] = {
        channel: int(n)
        for channel, n in session.execute(
            select(ReadingRow.channel, func.count()).where(*in_range).group_by(ReadingRow.channel)
        )
    }
    width = max(1, -(-(hi - lo) // max(1, max_points)))
    return tuple(
        _raw_series(session, channel, (*in_range, ReadingRow.channel == channel))
        if counts[channel] <= max_points
        else _bucketed_series(
            session, channel, (*in_range, ReadingRow.channel == channel), lo, width
        )
        for channel in sorted(counts)
    )


def _raw_series(session: Session, channel: str, where: tuple[Any, ...]) -> ChannelSeries:
    """One point per reading."""
    rows = session.execute(
        select(ReadingRow.t_us, ReadingRow.value).where(*where).order_by(ReadingRow.t_us)
    ).all()
    values = tuple(float(value) for _, value in rows)
    return ChannelSeries(
        channel, tuple(t / US for t, _ in rows), values, values, (1,) * len(rows), None
    )


def _bucketed_series(
    session: Session, channel: str, where: tuple[Any, ...], lo: int, width: int
) -> ChannelSeries:
    """Minimum, maximum and count per bucket of ``width`` µs from ``lo``, computed in SQL."""
    bucket = ((ReadingRow.t_us - lo) // width).label("bucket")
    rows = session.execute(
        select(bucket, func.min(ReadingRow.value), func.max(ReadingRow.value), func.count())
        .where(*where)
        .group_by(bucket)
        .order_by(bucket)
    ).all()
    return ChannelSeries(
        channel,
        tuple((lo + int(b) * width) / US for b, _, _, _ in rows),
        tuple(float(low) for _, low, _, _ in rows),
        tuple(float(high) for _, _, high, _ in rows),
        tuple(int(n) for _, _, _, n in rows),
        width / US,
    )
