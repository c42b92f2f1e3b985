"""What the trigger rules cost the pipeline per event, in CPU and in changelog bytes, without I/O: each
event reads the deployment's table value (JSON), counts the event, decides, and writes the value back.

- baseline: a submission counted toward the threshold alone (the pipeline before trigger rules), on a
  deployment whose state holds no scores;
- an outlier score observed with a full window (1000 kept scores, the most the table keeps: its own
  value, `outliers:<id>`), and the policy decided (outlier rate and drift rules set);
- a drift report observed with 100 kept reports (the most) in the deployment's value, and the policy
  decided with the full outlier window read too.

Figures are events per second and as a ratio to the baseline measured in the same run, and the size in
bytes of the value each event writes to the changelog.

Usage: .venv/bin/python -m bench.triggers [--events 20000]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from uuid import uuid4

from schemas.events import DriftReported, FeatureDrift, MultipleTestingCorrection, OutlierScored
from schemas.triggers import MAX_DRIFT_REPORTS, MAX_OUTLIER_WINDOW, DriftRule, OutlierRateRule, TriggerPolicy
from services.pipeline.counting import (
    CycleCount,
    OutlierWindow,
    TrainingSettings,
    count_submission,
    decide,
    observe_drift,
    observe_outlier,
)

START = datetime(2026, 12, 1, tzinfo=UTC)
THRESHOLD = TrainingSettings(active=True, threshold=10**9)
RULES = TrainingSettings(
    active=True,
    threshold=10**9,
    policy=TriggerPolicy(
        drift=DriftRule(reports=MAX_DRIFT_REPORTS, min_features=99),  # never fires: every event decides
        outlier_rate=OutlierRateRule(level=0.99, window=MAX_OUTLIER_WINDOW, rate=0.99),
    ),
)


def _rate(events: int, step: Callable[[int], None]) -> float:
    started = time.perf_counter()
    for i in range(events):
        step(i)
    return events / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=20000)
    events = parser.parse_args().events
    deployment_id = uuid4()

    counting = CycleCount(submitted=1, total=1).model_dump_json().encode()

    def submission(_: int) -> None:
        state = CycleCount.model_validate_json(counting)
        counted, _trigger = count_submission(state, THRESHOLD, START)
        counted.model_dump_json().encode()

    window = OutlierWindow()
    for i in range(MAX_OUTLIER_WINDOW):
        scored = OutlierScored(
            deployment_id=deployment_id, prediction_id=uuid4(), reference_id=uuid4(), score=(i % 100) / 100
        )
        window = observe_outlier(window, 1, scored) or window
    kept_scores = window.model_dump_json().encode()
    state = CycleCount(submitted=1, total=1)
    for minute in range(MAX_DRIFT_REPORTS):
        state = observe_drift(state, _report(deployment_id, minute)) or state
    kept_reports = state.model_dump_json().encode()
    scores = [
        OutlierScored(deployment_id=deployment_id, prediction_id=uuid4(), reference_id=uuid4(), score=0.5)
        for _ in range(events)
    ]
    reports = [_report(deployment_id, MAX_DRIFT_REPORTS + i) for i in range(events)]

    def outlier(i: int) -> None:
        state = CycleCount.model_validate_json(kept_reports)
        kept = observe_outlier(OutlierWindow.model_validate_json(kept_scores), state.cycle, scores[i])
        assert kept is not None
        decide(state, RULES, START, outliers=kept)
        kept.model_dump_json().encode()

    def drift(i: int) -> None:
        state = CycleCount.model_validate_json(kept_reports)
        observed = observe_drift(state, reports[i])
        assert observed is not None
        outliers = OutlierWindow.model_validate_json(kept_scores)
        following, _trigger = decide(observed, RULES, START, outliers=outliers)
        following.model_dump_json().encode()

    baseline = _rate(events, submission)
    print(f"baseline: a submission counted, threshold only  {baseline:9.0f}/s  writes {len(counting)} B")
    for name, step, written in (
        ("an outlier score, 1000 kept", outlier, kept_scores),
        ("a drift report, 100 kept", drift, kept_reports),
    ):
        rate = _rate(events, step)
        print(f"{name:<47} {rate:9.0f}/s  {rate / baseline:.3f}x baseline  writes {len(written)} B")


def _report(deployment_id: object, minute: int) -> DriftReported:
    end = START + timedelta(minutes=minute)
    return DriftReported(
        deployment_id=deployment_id,  # type: ignore[arg-type]
        reference_id=uuid4(),
        window_start=end - timedelta(minutes=1),
        window_end=end,
        window_size=200,
        reference_size=1000,
        correction=MultipleTestingCorrection.BONFERRONI,
        alpha=0.01,
        features=[FeatureDrift(feature="brightness", statistic=0.5, p_value=0.001, drifted=True)],
        drift_detected=True,
    )


if __name__ == "__main__":
    main()
