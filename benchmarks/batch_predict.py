"""Batch scoring: `lifeboat predict` on generated passengers, logged into PostgreSQL, beside
the plain scikit-learn pipeline's `predict_proba` on the same rows.

Both run in a fresh process, so each peak RSS is its own. `lifeboat predict` is the whole
command (start-up, model load, reading, checks, scoring, the output file and the COPY into
the prediction log); the baseline reads the file with pandas, computes the feature view and
calls `predict_proba` once, and logs nothing. A third row times `score_file` in a process
that has scored a small file already, as the scoring job of a running `lifeboat up` finds a
new file: the same work with the libraries imported (the champion is still loaded per
file), on a second generated file, since the first one's predictions are logged by then.
The rows are clean: the plain pipeline stops at the first unusable value (an injected `inf`
fails `predict_proba`), where `lifeboat predict` scores the row with the value missing.
The model is trained on the bundled 1309 rows.

    python -m benchmarks.batch_predict [--rows N | --quick | --smoke] [--postgres URL]
    python -m benchmarks.batch_predict --against TREE [--turns N] [--rows N | --quick]

`--against TREE` times `lifeboat predict` of one file with this code and with another
checkout's, by turns (see _trees.py), the prediction log emptied before each run so that
each logs every row.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
from sqlalchemy import make_url

from benchmarks import _trees
from benchmarks.ingest import arguments, row_count, scratch_postgres
from lifeboat.synthetic.passengers import synthetic_passengers, write_passengers

TARGET_SECONDS = 10.0
SEARCH_ITERATIONS, SMOKE_SEARCH_ITERATIONS = 2, 1

_TRAIN = """
from lifeboat.config import Settings
from lifeboat.datasets import load_spec
from lifeboat.db import Database
from lifeboat.orchestration import bootstrap
settings = Settings()
bootstrap(settings, Database(settings.db_url), load_spec(settings.dataset))
"""

_BASELINE = """
import json, sys, time
import pandas as pd
from lifeboat.config import Settings
from lifeboat.datasets import load_spec
from lifeboat.features import feature_view
from lifeboat.registry import ModelRegistry
settings = Settings()
spec = load_spec(settings.dataset)
_, model = ModelRegistry(settings, spec.model_name).load_champion()
started = time.perf_counter()
rows = pd.read_csv(sys.argv[1], na_values=spec.missing_values).rename(columns=lambda name: spec.canonical(name) or name)
probabilities = model.predict_proba(feature_view(spec).from_records(rows))[:, 1]
print(json.dumps({"seconds": time.perf_counter() - started, "rows": len(probabilities)}))
"""

_WARM = """
import json, sys, time
from lifeboat.config import Settings
from lifeboat.datasets import load_spec
from lifeboat.db import Database
from lifeboat.scoring import score_file
settings = Settings()
spec, database = load_spec(settings.dataset), Database(settings.db_url)
score_file(settings, database, spec, str(spec.bundled_path()), sys.argv[3])
started = time.perf_counter()
report = score_file(settings, database, spec, sys.argv[1], sys.argv[2])
print(json.dumps({"seconds": time.perf_counter() - started, "rows": report.rows}))
"""


def main(argv: list[str] | None = None) -> int:
    parser = arguments("python -m benchmarks.batch_predict", __doc__)
    _trees.add_flag(parser)
    parser.add_argument("--turns", type=int, default=5, help="runs per side with --against")
    args, _ = parser.parse_known_args(argv)
    rows = row_count(args)
    if args.against:
        return _against(args, rows)
    with tempfile.TemporaryDirectory(prefix="lifeboat-bench-") as scratch:
        source, second = Path(scratch) / "passengers.csv", Path(scratch) / "more.csv"
        started = time.perf_counter()
        write_passengers(synthetic_passengers(rows, seed=11), source)
        write_passengers(synthetic_passengers(rows, seed=12), second)
        print(f"generated 2 x {rows:,} rows ({source.stat().st_size / 1e6:.0f} MB CSV each) "
              f"in {time.perf_counter() - started:.1f} s")
        with scratch_postgres(args.postgres) as postgres_url:
            iterations = SMOKE_SEARCH_ITERATIONS if args.smoke else SEARCH_ITERATIONS
            env = _environment(Path(scratch) / "home", postgres_url, iterations)
            started = time.perf_counter()
            _run([sys.executable, "-c", _TRAIN], env)
            print(f"trained a champion on the bundled rows in {time.perf_counter() - started:.1f} s")
            results = {
                "lifeboat predict": _predict(source, Path(scratch) / "scored.csv", env),
                "sklearn predict_proba": _baseline(source, env),
                "score_file, warm process": _warm(second, Path(scratch), env),
            }
    _table(rows, results)
    return 0


def _against(args: argparse.Namespace, rows: int) -> int:
    """`lifeboat predict` of one file by this tree and by `args.against`, by turns."""
    sides = _trees.sides(args.against)
    seconds: dict[str, list[float]] = {side: [] for side in sides}
    with tempfile.TemporaryDirectory(prefix="lifeboat-bench-") as scratch:
        source = Path(scratch) / "passengers.csv"
        write_passengers(synthetic_passengers(rows, seed=11), source)
        with scratch_postgres(args.postgres) as postgres_url:
            env = _environment(Path(scratch) / "home", postgres_url, SEARCH_ITERATIONS)
            _trees.bootstrap_with(args.against, env)
            for turn in range(args.turns):
                for side in list(sides) if turn % 2 == 0 else list(sides)[::-1]:
                    _empty_prediction_log(postgres_url)
                    result = _predict(source, Path(scratch) / "scored.csv", {**env, **sides[side]})
                    seconds[side].append(result["seconds"])
    print(f"lifeboat predict, {rows:,} rows scored and logged into PostgreSQL, "
          f"{args.turns} turns by turns")
    for side, times in seconds.items():
        print(f"{side:<24} median {statistics.median(times):6.2f} s   "
              + " / ".join(f"{time_:.2f}" for time_ in times))
    mine, theirs = (statistics.median(times) for times in seconds.values())
    print(f"this tree / {args.against}: {mine / theirs:.3f}x the time")
    return 0


def _empty_prediction_log(postgres_url: str) -> None:
    """A rerun of one file by the same champion logs nothing new (the ids are the same):
    each timed run starts from an empty log, so each writes every row."""
    plain = make_url(postgres_url).set(drivername="postgresql").render_as_string(
        hide_password=False)
    with psycopg.connect(plain, autocommit=True) as connection:
        connection.execute("DELETE FROM predictions")


def _environment(home: Path, postgres_url: str, iterations: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("MLFLOW_TRACKING_URI", "REDIS_URL") and not k.startswith("LIFEBOAT_")}
    return {**env, "LIFEBOAT_HOME": str(home), "DATABASE_URL": postgres_url,
            "LIFEBOAT_SEARCH_ITERATIONS": str(iterations), "LIFEBOAT_LOG_LEVEL": "WARNING"}


def _predict(source: Path, output: Path, env: dict[str, str]) -> dict:
    """Wall time of the whole command, as a user waits for it."""
    started = time.perf_counter()
    _, rss_mb = _run([sys.executable, "-m", "lifeboat", "predict", str(source), "-o", str(output)],
                     env)
    return {"seconds": time.perf_counter() - started, "rss_mb": rss_mb, "logged": "yes"}


def _baseline(source: Path, env: dict[str, str]) -> dict:
    """Timed inside the process from the read on: no model load, no start-up."""
    output, rss_mb = _run([sys.executable, "-c", _BASELINE, str(source)], env)
    return {**json.loads(output.strip().splitlines()[-1]), "rss_mb": rss_mb, "logged": "no"}


def _warm(source: Path, scratch: Path, env: dict[str, str]) -> dict:
    """Timed inside the process, the second file it scores."""
    output, rss_mb = _run([sys.executable, "-c", _WARM, str(source), str(scratch / "more.out.csv"),
                           str(scratch / "bundled.out.csv")], env)
    return {**json.loads(output.strip().splitlines()[-1]), "rss_mb": rss_mb, "logged": "yes"}


def _run(command: list[str], env: dict[str, str]) -> tuple[str, float]:
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(command[:4])} failed")
    return output, usage.ru_maxrss / 1024


def _table(rows: int, results: dict[str, dict]) -> None:
    print(f"{'run':<26} {'seconds':>8} {'rows/s':>10} {'peak RSS MB':>12} {'logged':>7}")
    for name, result in results.items():
        print(f"{name:<26} {result['seconds']:>8.2f} {rows / result['seconds']:>10,.0f} "
              f"{result['rss_mb']:>12.0f} {result['logged']:>7}")
    ours, plain = results["lifeboat predict"], results["sklearn predict_proba"]
    print(f"lifeboat predict / sklearn predict_proba: {ours['seconds'] / plain['seconds']:.2f}x time, "
          f"{ours['rss_mb'] / plain['rss_mb']:.2f}x peak RSS")
    if rows == 1_000_000:
        met = ours["seconds"] <= TARGET_SECONDS
        print(f"target (1M rows scored and logged into PostgreSQL): <= {TARGET_SECONDS:.0f} s: "
              f"{'met' if met else 'missed'}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
