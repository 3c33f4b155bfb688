"""The scoring service behind the routes: limits, checks, results and logs.

Each patient's latest complete window is scored by
:func:`vitalsentry.scoring.score_readings`, the path of ``vitalsentry score`` and the
evaluation, so the same readings give the same risk, views, fused risk and (given the
patient's previous ``alarm_state``) alarm state. A batch (or a FHIR Bundle) is scored in
one batched call on the model thread of the
:class:`~vitalsentry.serve.combine.Combiner`, which also folds concurrent requests into
one call; the scoring methods are coroutines that await it. Logs carry a keyed hash of
the patient id (:func:`patient_tag`), never the id or any vital value. Every patient's
readings are bounded in time span before anything is gridded.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime

import numpy as np

from vitalsentry.data.gaps import describe_limits
from vitalsentry.data.schema import STATIC_FIELDS
from vitalsentry.pipeline import VitalRiskPipeline
from vitalsentry.serve.combine import Combiner, Scored
from vitalsentry.serve.fhir import FhirBundle, bundle_patients
from vitalsentry.serve.inputs import (
    PatientReadings,
    RequestError,
    check_span,
    coverage_problem,
    from_request,
    news2_of,
    patient_tag,
    span_limit,
)
from vitalsentry.serve.metrics import ServiceMetrics
from vitalsentry.serve.schemas import (
    AlarmStateBody,
    BatchRequest,
    BatchResult,
    ModelCard,
    PatientError,
    ScoreRequest,
    ScoreResult,
    Uncertainty,
    WindowInfo,
)
from vitalsentry.serve.settings import ENV_PREFIX, Settings

logger = logging.getLogger("vitalsentry.serve")


class ScoringService:
    """A loaded pipeline with the service's limits, request combiner and metrics.

    Parameters
    ----------
    pipeline : VitalRiskPipeline
        The verified bundle's pipeline.
    settings : Settings
        Limits (readings, patients, MC passes).
    metrics : ServiceMetrics
        Where scores by level are counted.
    """

    def __init__(
        self, pipeline: VitalRiskPipeline, settings: Settings, metrics: ServiceMetrics
    ) -> None:
        self.pipeline = pipeline
        self.settings = settings
        self.metrics = metrics
        self.combiner = Combiner(pipeline, metrics)
        data, window = pipeline.data_config, pipeline.window_config
        self.needed_s = (window.length - 1) * data.step_s
        self.no_window = (
            f"no complete window: {', '.join(pipeline.channels)} need {self.needed_s:g} s together "
            "without a gap beyond the gap policy "
            f"({describe_limits(pipeline.channels, data.gap_interpolate_s, data.gap_carry_s)})"
        )
        self.card = _model_card(pipeline, self.needed_s)
        self.max_span_s, self.span_limit = span_limit(
            data, window.length, settings.max_span_windows
        )
        self.pseudonym_key = _pseudonym_key(settings)

    def close(self) -> None:
        """Stop the model thread (after the requests it holds are answered)."""
        self.combiner.close()

    @property
    def model_version(self) -> str:
        """Identifier of the served bundle."""
        return self.pipeline.model_version

    def mc_passes(self, requested: int) -> int:
        """Return the passes to run: 0 (off), or ``requested`` capped at ``max_mc_passes``.

        Raises
        ------
        RequestError
            ``requested`` is 1 (a spread needs at least two passes).
        """
        if requested == 1:
            raise RequestError(("query", "mc_passes"), "must be 0 (off) or at least 2")
        return min(requested, self.settings.max_mc_passes)

    def _check_size(self, patients: int, readings: int) -> None:
        if patients > self.settings.max_patients:
            raise RequestError(
                (), f"{patients} patients; at most {self.settings.max_patients} per request"
            )
        if readings > self.settings.max_readings:
            raise RequestError(
                (), f"{readings} readings; at most {self.settings.max_readings} per request"
            )

    def _coverage(self, patient: PatientReadings) -> str | None:
        data = self.pipeline.data_config
        return coverage_problem(
            patient,
            self.pipeline.channels,
            self.needed_s,
            self.pipeline.window_config.length,
            data.step_s,
        )

    async def score(self, request: ScoreRequest, mc_passes: int) -> ScoreResult:
        """Score one patient's latest complete window.

        Raises
        ------
        RequestError
            Too many readings, duplicate instants, a channel missing or too short, or
            no complete window (gaps, or channels that do not overlap).
        """
        passes = self.mc_passes(mc_passes)
        self._check_size(1, len(request.readings))
        patient = from_request(request)
        outcome = await self._score_patients([patient], passes)
        if outcome.errors:
            raise RequestError(("readings",), outcome.errors[0].detail)
        return outcome.results[0]

    async def score_batch(self, request: BatchRequest, mc_passes: int) -> BatchResult:
        """Score several patients in one batched pass.

        Raises
        ------
        RequestError
            Too many patients or readings, a patient id given twice, or duplicate
            instants within a patient. Patients without a complete window are reported
            in ``errors`` while the others are scored.
        """
        passes = self.mc_passes(mc_passes)
        self._check_size(len(request.patients), sum(len(p.readings) for p in request.patients))
        first: dict[str, int] = {}
        for i, item in enumerate(request.patients):
            j = first.setdefault(item.patient_id, i)
            if j != i:
                raise RequestError(
                    ("patients", i, "patient_id"), f"duplicate patient_id (also patients[{j}])"
                )
        patients = [from_request(item, ("patients", i)) for i, item in enumerate(request.patients)]
        return await self._score_patients(patients, passes)

    async def score_fhir(self, bundle: FhirBundle, mc_passes: int) -> BatchResult:
        """Score every patient (``subject``) of a FHIR Bundle in one batched pass.

        Raises
        ------
        RequestError
            A bad entry (see :func:`bundle_patients`), or too many patients or entries.
        """
        passes = self.mc_passes(mc_passes)
        patients = bundle_patients(bundle)
        self._check_size(len(patients), len(bundle.entry))
        return await self._score_patients(patients, passes)

    async def _score_patients(
        self, patients: Sequence[PatientReadings], passes: int
    ) -> BatchResult:
        """Score distinct patients together; those that cannot be scored go to ``errors``.

        Raises
        ------
        RequestError
            A patient's readings span more than the service accepts (checked before any
            grid is built).
        """
        for patient in patients:
            check_span(patient, self.max_span_s, self.span_limit)
        problems = {i: self._coverage(p) for i, p in enumerate(patients)}
        ready = [i for i, problem in problems.items() if problem is None]
        scored = await self.combiner.rows([patients[i] for i in ready], passes) if ready else []
        rows = dict(zip(ready, scored, strict=True))
        results, errors = [], []
        for i, patient in enumerate(patients):
            row = rows.get(i)
            if row is not None:
                results.append(self._result(patient, row, passes))
                continue
            logger.info(
                "not scored patient=%s reason=%s",
                patient_tag(patient.patient_id, self.pseudonym_key),
                "insufficient data" if problems[i] else "no complete window",
            )
            errors.append(
                PatientError(
                    index=i, patient_id=patient.patient_id, detail=problems[i] or self.no_window
                )
            )
        return BatchResult(model_version=self.model_version, results=results, errors=errors)

    def _result(self, patient: PatientReadings, scored: Scored, passes: int) -> ScoreResult:
        """One scored window as a result."""
        table, i = scored.table, scored.index
        scores = table.scores
        fused, note = table.fused_at(i)
        head = self.pipeline.fusion
        unknown = [name for name in STATIC_FIELDS if name not in patient.static]
        if fused is not None and head is not None and head.config.use_static and unknown:
            note = f"scored without the static context {', '.join(unknown)} (not given)"
        alarm = None if table.alarm is None or patient.alarm is None else table.alarm[i]
        level = str(scores.level[i])
        self.metrics.scores.labels(level).inc()
        logger.debug(  # per-patient audit line; INFO would cost ~15% of a request under load
            "scored patient=%s level=%s mc_passes=%d",
            patient_tag(patient.patient_id, self.pseudonym_key),
            level,
            passes,
        )
        return ScoreResult(
            patient_id=patient.patient_id,
            model_version=self.model_version,
            window_start=_utc(scored.start_s),
            window_end=_utc(scored.end_s),
            risk=float(scores.risk[i]),
            level=level,  # type: ignore[arg-type]
            anomaly_score=float(scores.anomaly_score[i]),
            contributions={
                name: float(value)
                for name, value in zip(self.pipeline.channels, scores.contributions[i], strict=True)
            },
            uncertainty=Uncertainty(
                mean=float(scores.risk_mean[i]), std=float(scores.risk_std[i]), passes=passes
            )
            if passes and scores.risk_mean is not None and scores.risk_std is not None
            else None,
            news2=news2_of(patient),
            views={
                name: None if np.isnan(values[i]) else float(values[i])
                for name, values in scores.views.items()
            },
            fused_risk=fused,
            fused_risk_note=note,
            alarm=None
            if alarm is None
            else AlarmStateBody(on=alarm.on, quiet=alarm.quiet, recent=list(alarm.recent)),
        )


def _pseudonym_key(settings: Settings) -> bytes:
    """Return the key of the patient pseudonyms in logs: the settings' secret, else a random one."""
    if settings.pseudonym_key is not None:
        return settings.pseudonym_key.get_secret_value().encode()
    logger.warning(
        "%sPSEUDONYM_KEY is not set: patient pseudonyms in the logs use a random key of this "
        "process (they will not match across restarts or workers)",
        ENV_PREFIX,
    )
    return secrets.token_bytes(32)


def _utc(epoch_s: float) -> datetime:
    """Epoch seconds as an aware UTC datetime, rounded to the microsecond."""
    return datetime.fromtimestamp(round(epoch_s, 6), tz=UTC)


def _model_card(pipeline: VitalRiskPipeline, seconds: float) -> ModelCard:
    """Build the model card from a pipeline's bundle manifest."""
    manifest = pipeline.bundle.manifest
    data = manifest.get("data", {})
    window, cal = pipeline.window_config, pipeline.calibration
    return ModelCard(
        model_version=pipeline.model_version,
        created=manifest.get("created"),
        vitalsentry_version=manifest.get("versions", {}).get("vitalsentry"),
        data_fingerprint=data.get("fingerprint"),
        data_source=data.get("source"),
        notes=list(data.get("notes", [])),
        channels=list(pipeline.channels),
        feature_names=list(pipeline.bundle.feature_names),
        window=WindowInfo(
            length=window.length,
            stride=window.stride,
            step_s=pipeline.data_config.step_s,
            seconds=seconds,
            max_gap_s=pipeline.data_config.max_gap_s,
        ),
        risk_thresholds={"medium": cal.risk_medium, "high": cal.risk_high},
        metrics=manifest.get("metrics", {}),
    )
