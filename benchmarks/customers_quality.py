"""Customers model quality on a time split: the shipped pipeline against the last amount.

For each generator seed, seeded customers.csv + transactions.json are written, ingested
into a fresh SQLite database and trained exactly as `lifeboat train` does: snapshots at the
spec's cut-offs, the latest cut-off held out, search + CV on the earlier ones. The held-out
ROC AUC is compared with ranking the same customers by their last completed amount alone
(the spec's `training.baseline`), which the model must beat.

    python -m benchmarks.customers_quality [--quick | --smoke] [--customers N] [--transactions N]

The held-out accuracy at the model's own decision threshold (calibrated probabilities) is
compared with always answering "no", which a model with SMOTE-shifted probabilities deciding
at 0.5 failed to beat.

Exits 1 when the model's held-out ROC AUC does not beat the baseline's on every seed, or its
accuracy does not beat always "no" by ACCURACY_MARGIN on every seed.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks import _smoke
from lifeboat.config import Settings
from lifeboat.datasets import load_spec
from lifeboat.db import Database, upgrade
from lifeboat.features import feature_view
from lifeboat.ingest import LandingZone, ingest_file
from lifeboat.synthetic.customers import write_customers
from lifeboat.training import labelled_features, train

SEEDS, QUICK_SEEDS = (0, 1, 2), (0,)
ACCURACY_MARGIN = 0.03
SMOKE_CUSTOMERS, SMOKE_TRANSACTIONS = 300, 15_000  # the generator's 50 per customer
SMOKE_SEARCH_ITERATIONS = 1


@dataclass(frozen=True)
class SeedResult:
    seed: int
    rows: int
    held_out: int
    positive_rate: float
    model_auc: float
    baseline_auc: float
    accuracy: float        # at the model's own decision threshold
    always_no: float       # the accuracy of answering "no" to every held-out customer
    threshold: float
    candidate: str
    seconds: float


def main(argv: list[str] | None = None) -> int:
    args, _ = _arguments().parse_known_args(argv)  # the rest belongs to other benchmarks
    logging.getLogger("lifeboat").setLevel(logging.WARNING)
    seeds = _smoke.pick(args, SEEDS, QUICK_SEEDS, QUICK_SEEDS)
    customers = SMOKE_CUSTOMERS if args.smoke else args.customers
    transactions = SMOKE_TRANSACTIONS if args.smoke else args.transactions
    iterations = SMOKE_SEARCH_ITERATIONS if args.smoke else None
    results = [evaluate_seed(seed, customers, transactions, iterations) for seed in seeds]
    return _smoke.exit_code(report(results, customers, transactions), args)


def _arguments() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.customers_quality",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one generator seed, not three")
    parser.add_argument("--customers", type=int, default=3000)
    parser.add_argument("--transactions", type=int, default=150_000)
    _smoke.add_flag(parser)
    return parser


def evaluate_seed(seed: int, customers: int, transactions: int,
                  iterations: int | None = None) -> SeedResult:
    """Generated, ingested and trained in a scratch home; `iterations` overrides the spec's
    search budget."""
    spec = load_spec("customers")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="lifeboat-customers-") as scratch:
        home = Path(scratch) / "home"
        settings = Settings(_env_file=None, home=home, database_url=None, mlflow_tracking_uri=None,
                            search_iterations=iterations)
        settings.ensure_home()
        database = Database(settings.db_url)
        upgrade(database)
        zone = LandingZone(settings.landing_url)
        for path in write_customers(Path(scratch) / "data", seed, customers=customers,
                                    transactions=transactions):
            ingest_file(database, spec, str(path), zone)
        rows = labelled_features(database, feature_view(spec))
        result = train(settings, database, spec, promote=False)
        database.dispose()
    held_out = int((rows.cutoffs == rows.cutoffs.max()).sum())
    metrics = result.metrics
    negatives = metrics["true_negatives"] + metrics["false_positives"]
    return SeedResult(seed, len(rows.labels), held_out, float(rows.labels.mean()),
                      metrics["roc_auc"], metrics["baseline_roc_auc"], metrics["accuracy"],
                      negatives / held_out, metrics["threshold"], result.best_candidate,
                      time.perf_counter() - started)


def report(results: list[SeedResult], customers: int, transactions: int) -> bool:
    """Prints the figures; False unless the model beat the baseline on every seed."""
    spec = load_spec("customers")
    label = spec.label
    print(f"\nCustomers model quality: generator {customers:,} customers, {transactions:,} "
          f"transactions over 24 months, seeds {[r.seed for r in results]}")
    print(f"label: completed purchase > ${label.above:.0f} within {label.horizon_days} days; "
          f"{label.cutoffs.count} cut-offs {label.cutoffs.every_days} days apart, the latest "
          "held out\n")
    print("| seed | snapshot rows | held-out rows | positive rate | model ROC AUC "
          "| last amount ROC AUC | threshold | accuracy | always \"no\" | chosen | seconds |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r.seed} | {r.rows:,} | {r.held_out:,} | {r.positive_rate:.3f} | "
              f"{r.model_auc:.4f} | {r.baseline_auc:.4f} | {r.threshold:.3f} | "
              f"{r.accuracy:.4f} | {r.always_no:.4f} | {r.candidate} | {r.seconds:.0f} |")
    gains = [r.model_auc - r.baseline_auc for r in results]
    margins = [r.accuracy - r.always_no for r in results]
    print(f"\nmedian model ROC AUC {statistics.median(r.model_auc for r in results):.4f}, "
          f"median baseline {statistics.median(r.baseline_auc for r in results):.4f}, "
          f"smallest gain {min(gains):+.4f}; accuracy over always \"no\": smallest "
          f"{min(margins):+.4f}")
    beaten = all(gain > 0 for gain in gains)
    decided = all(margin >= ACCURACY_MARGIN for margin in margins)
    print(f"target: beat the last amount alone on every seed: {'met' if beaten else 'MISSED'}")
    print(f"target: accuracy at the threshold beats always \"no\" by >= {ACCURACY_MARGIN} on "
          f"every seed: {'met' if decided else 'MISSED'}")
    return beaten and decided


if __name__ == "__main__":
    raise SystemExit(main())
