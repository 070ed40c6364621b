"""Drift detector quality: false alarms and detections on seeded synthetic passengers.

The reference is a 2,000-row training-like sample (synthetic passengers, seed 1). Windows
of 200 rows are cut from one big frame per scenario, drawn with other seeds: no shift
(every alarm is false), age and fare each moved by half the reference's standard
deviation, and third class grown from 55% to 80%. Every window is tested with Bonferroni
and with FDR correction. Probabilities come from a fixed logistic score on sex, class and
age, standing in for a model. A false-alarm rate is conditional on the one reference
drawn, so it is also shown for further reference seeds (reported, not a target).

    python -m benchmarks.drift_quality [--quick | --smoke] [--windows N] [--references N]

Exits 1 when a target is missed: <= 5% false alarms, >= 95% detections, and
`detect_drift` on 1,000 rows in < 100 ms.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from benchmarks import _smoke
from lifeboat.datasets import DatasetSpec, load_spec
from lifeboat.monitoring.drift import DriftResult, detect_drift
from lifeboat.registry import DriftReference
from lifeboat.synthetic.passengers import Shift, synthetic_passengers

REFERENCE_ROWS, REFERENCE_SEED = 2_000, 1
WINDOW = 200
WINDOWS, QUICK_WINDOWS, SMOKE_WINDOWS = 500, 200, 20
REFERENCES, QUICK_REFERENCES, SMOKE_REFERENCES = 10, 3, 2
FALSE_ALARM_TARGET, DETECTION_TARGET, TARGET_MS = 0.05, 0.95, 100.0


@dataclass(frozen=True)
class Scenario:
    name: str
    shift: Shift | None
    feature: str | None  # the feature the shift moves; None when nothing moves
    seed: int


@dataclass(frozen=True)
class Outcome:
    scenario: Scenario
    windows: int
    rates: dict[str, float]  # correction -> share of windows flagged
    median_psi: float
    median_ms: float

    @property
    def met(self) -> bool:
        if self.scenario.shift is None:
            return all(rate <= FALSE_ALARM_TARGET for rate in self.rates.values())
        return all(rate >= DETECTION_TARGET for rate in self.rates.values())


def main(argv: list[str] | None = None) -> int:
    args, _ = _arguments().parse_known_args(argv)  # the rest belongs to other benchmarks
    windows = args.windows or _smoke.pick(args, WINDOWS, QUICK_WINDOWS, SMOKE_WINDOWS)
    references = args.references or _smoke.pick(args, REFERENCES, QUICK_REFERENCES,
                                                 SMOKE_REFERENCES)
    spec = load_spec("titanic")
    training = _passengers(spec, REFERENCE_ROWS, REFERENCE_SEED)
    reference = DriftReference.from_training(spec, training, stand_in_probabilities(training))
    outcomes = [_run(spec, reference, scenario, windows) for scenario in _scenarios(training)]
    _print_outcomes(outcomes)
    speed_met = _print_speed(spec, reference)
    _print_reference_spread(spec, references, windows)
    return _smoke.exit_code(speed_met and all(outcome.met for outcome in outcomes), args)


def _arguments() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.drift_quality",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK_WINDOWS} windows per scenario instead of {WINDOWS}, "
                             f"{QUICK_REFERENCES} reference seeds instead of {REFERENCES}")
    parser.add_argument("--windows", type=int, help="windows per scenario")
    parser.add_argument("--references", type=int, help="reference seeds for the false-alarm spread")
    _smoke.add_flag(parser)
    return parser


def stand_in_probabilities(frame: pd.DataFrame) -> np.ndarray:
    """A fixed logistic score on sex, class and age: a model's output without training one."""
    score = (2.5 * (frame["sex"] == "female") - 0.9 * (frame["pclass"] - 2)
             - 0.03 * (frame["age"].fillna(30) - 30))
    return 1 / (1 + np.exp(-score.to_numpy(dtype=float)))


def _passengers(spec: DatasetSpec, rows: int, seed: int,
                shift: Shift | None = None) -> pd.DataFrame:
    """Synthetic passengers under the spec's canonical column names."""
    frame = synthetic_passengers(rows, seed=seed, shift=shift)
    return frame.rename(columns=lambda name: spec.canonical(name) or name)


NO_SHIFT = Scenario("no shift", None, None, seed=101)


def _scenarios(training: pd.DataFrame) -> list[Scenario]:
    """Shifts of half the reference's standard deviation, and the class mix."""
    return [
        NO_SHIFT,
        Scenario("age +0.5 sd", Shift(age_offset=0.5 * training["age"].std()), "age", seed=102),
        Scenario("fare +0.5 sd", Shift(fare_offset=0.5 * training["fare"].std()), "fare",
                 seed=103),
        Scenario("3rd class 55% -> 80%", Shift(class_mix=(0.1, 0.1, 0.8)), "pclass", seed=104),
    ]


def _run(spec: DatasetSpec, reference: DriftReference, scenario: Scenario,
         windows: int) -> Outcome:
    """Consecutive windows of one big frame: the generator shuffles its parties across the
    frame, so a window holds unrelated passengers, and one call makes every window."""
    rows = _passengers(spec, WINDOW * windows, scenario.seed, scenario.shift)
    probabilities = stand_in_probabilities(rows)
    flagged = {"bonferroni": [], "fdr": []}
    psi, seconds = [], []
    for start in range(0, len(rows), WINDOW):
        window, scores = rows.iloc[start:start + WINDOW], probabilities[start:start + WINDOW]
        started = time.perf_counter()
        result = detect_drift(reference, window, scores, correction="bonferroni")
        seconds.append(time.perf_counter() - started)
        flagged["bonferroni"].append(result.drifted)
        flagged["fdr"].append(detect_drift(reference, window, scores, correction="fdr").drifted)
        psi.append(_psi_of(result, scenario.feature))
    rates = {correction: float(np.mean(flags)) for correction, flags in flagged.items()}
    return Outcome(scenario, windows, rates, statistics.median(psi),
                   statistics.median(seconds) * 1000)


def _psi_of(result: DriftResult, feature: str | None) -> float:
    """The moved feature's PSI; with nothing moved, the largest: PSI's noise floor."""
    if feature is None:
        return max(test.psi for test in result.features)
    return next(test.psi for test in result.features if test.feature == feature)


def _print_outcomes(outcomes: list[Outcome]) -> None:
    print(f"\nDrift detection: reference {REFERENCE_ROWS:,} synthetic passengers "
          f"(seed {REFERENCE_SEED}), windows of {WINDOW} rows, p = 0.05")
    print(f"{'scenario':22} {'windows':>7} {'window':>6} {'measures':12} {'bonferroni':>10} "
          f"{'fdr':>6} {'target':>7} {'PSI feature':>12} {'median PSI':>10} {'ms/call':>8}")
    for outcome in outcomes:
        scenario = outcome.scenario
        measures = "false alarms" if scenario.shift is None else "detections"
        target = (f"<= {FALSE_ALARM_TARGET:.0%}" if scenario.shift is None
                  else f">= {DETECTION_TARGET:.0%}")
        print(f"{scenario.name:22} {outcome.windows:>7} {WINDOW:>6} {measures:12} "
              f"{outcome.rates['bonferroni']:>10.1%} {outcome.rates['fdr']:>6.1%} {target:>7} "
              f"{scenario.feature or 'max of all':>12} {outcome.median_psi:>10.3f} "
              f"{outcome.median_ms:>8.1f}  {'met' if outcome.met else 'MISSED'}")


def _print_speed(spec: DatasetSpec, reference: DriftReference) -> bool:
    """detect_drift on a 1,000-row window, and the per-request outlier check."""
    rows = _passengers(spec, 1_000, seed=60)
    probabilities = stand_in_probabilities(rows)
    window_ms = statistics.median(
        _timed(lambda: detect_drift(reference, rows, probabilities)) for _ in range(20)) * 1000
    records = rows.head(200).to_dict("records")
    outlier_us = statistics.median(
        _timed(lambda: [reference.outliers(record) for record in records])
        for _ in range(20)) / len(records) * 1e6
    met = window_ms < TARGET_MS
    print(f"\ndetect_drift on 1,000 rows: median {window_ms:.1f} ms (target < {TARGET_MS:.0f} ms: "
          f"{'met' if met else 'MISSED'}); outliers(): median {outlier_us:.1f} us per record")
    return met


def _timed(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def _print_reference_spread(spec: DatasetSpec, references: int, windows: int) -> None:
    """False alarms of the no-shift windows against references drawn with other seeds."""
    rates = []
    for seed in range(REFERENCE_SEED, REFERENCE_SEED + references):
        training = _passengers(spec, REFERENCE_ROWS, seed)
        reference = DriftReference.from_training(spec, training,
                                                 stand_in_probabilities(training))
        rates.append(_run(spec, reference, NO_SHIFT, windows).rates)
    print(f"\nFalse alarms by reference seed ({windows} no-shift windows each; "
          "reported, not a target)")
    print(f"{'reference seed':>14} {'bonferroni':>10} {'fdr':>6}")
    for seed, rate in enumerate(rates, start=REFERENCE_SEED):
        print(f"{seed:>14} {rate['bonferroni']:>10.1%} {rate['fdr']:>6.1%}")
    for name, summary in (("mean", np.mean), ("max", np.max)):
        print(f"{name:>14} {summary([r['bonferroni'] for r in rates]):>10.1%} "
              f"{summary([r['fdr'] for r in rates]):>6.1%}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
