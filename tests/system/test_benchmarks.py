"""Every benchmark runs to the end and prints its figures.

Benchmarks are run by hand, so one that stopped running would go unnoticed until its figures
were next wanted. Each is run here as `make bench` runs it, with `--smoke`: tiny inputs, so
its figures mean nothing and only their presence is checked, never their values or speed.
A new benchmark module is run without being listed; its figures must be named in FIGURES.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from benchmarks import benchmark_modules
from tests.support.paths import ROOT

TIMEOUT_SECONDS = 300  # the slowest, serving, takes about a minute here


@dataclass(frozen=True)
class Figures:
    """A table's header, and the rows that must follow it: each a label then a figure."""

    header: str
    rows: list[str]


MODELS = ["shipped: search + selection", "reference: plain forest, 300 trees",
          "LEAK: plain forest + boat (never ship)"]
SERVICES = ["lifeboat 1 worker", "lifeboat 2 workers", "flask baseline", "fastapi floor"]

# Compared with whitespace and table bars collapsed to single spaces.
FIGURES = {
    "adult_training": Figures("figure value target",
                              ["first model seconds", "held-out accuracy", "held-out ROC AUC"]),
    "aggregation": Figures("engine 1 cut-off: s rows/s vs fastest peak RSS MB",
                           ["pandas", "polars", "duckdb"]),
    "batch_predict": Figures("run seconds rows/s peak RSS MB logged",
                             ["lifeboat predict", "sklearn predict_proba",
                              "score_file, warm process"]),
    "cli": Figures("command median s min s max s target s",
                   ["lifeboat --help", "lifeboat models", "lifeboat jobs"]),
    "customers_quality": Figures("seed snapshot rows held-out rows positive rate model ROC AUC",
                                 ["0", "median model ROC AUC"]),
    "drift_quality": Figures("scenario windows window measures bonferroni fdr",
                             ["no shift", "age +0.5 sd", "fare +0.5 sd", "3rd class 55% -> 80%",
                              "detect_drift on 1,000 rows: median"]),
    "feature_store": Figures("approach 1 id p50 1 id p99 100 id p50 100 id p99",
                             ["redis store", "embedded store", "naive GET loop", "materialize"]),
    "ingest": Figures("database seconds rows/s peak RSS MB loaded rejected",
                      ["postgres", "sqlite"]),
    "outcomes": Figures("database 5,000 labelled s nothing new ms nothing new, whole log ms "
                        "newest event ms", ["postgres", "sqlite"]),
    "model_quality": Figures("model metric mean std median target",
                             [f"{model} {metric}" for model in MODELS
                              for metric in ("accuracy", "roc_auc", "ece")]),
    "spark_engine": Figures("rows local s spark s local rows/s/core spark rows/s/core "
                            "spark/local time checksum s",
                            ["5,000", "1 cut-off", "training cut-offs"]),
    "serving": Figures("service clients requests errors req/s p50 ms p99 ms",
                       [f"{service} {clients}" for service in SERVICES for clients in (1, 16)]),
}

NUMBER = re.compile(r"[-+]?\d")  # where a figure starts: 0.8719, 1,732, 4.0%, -0.1


@pytest.mark.slow
@pytest.mark.parametrize("name", [module.__name__.rpartition(".")[2]
                                  for module in benchmark_modules()])
def test_benchmark_runs_and_prints_its_figures(name: str, tmp_path: Path) -> None:
    assert name in FIGURES, f"name the figures benchmarks.{name} prints in FIGURES"
    returncode, output = run_smoke(name, tmp_path)
    assert returncode == 0, f"benchmarks.{name} --smoke exited {returncode}:\n{output[-4000:]}"
    lines = [" ".join(line.replace("|", " ").split()) for line in output.splitlines()]
    figures = FIGURES[name]
    assert any(figures.header in line for line in lines), f"no table header in:\n{output}"
    missing = [row for row in figures.rows if not any(_row_with_figure(line, row)
                                                      for line in lines)]
    assert not missing, f"rows without a figure: {missing} in:\n{output}"


def _row_with_figure(line: str, label: str) -> bool:
    """`line` is the row `label`, a number right after the label."""
    return line.startswith(label + " ") and NUMBER.match(line, len(label) + 1) is not None


def run_smoke(name: str, scratch: Path) -> tuple[int, str]:
    """`python -m benchmarks.<name> --smoke` in a session of its own, with a scratch home and
    temporary folder and none of the developer's settings but the test servers' addresses;
    whatever it started and left running is killed with it."""
    env = {key: value for key, value in os.environ.items()
           if key not in ("DATABASE_URL", "REDIS_URL", "MLFLOW_TRACKING_URI")
           and (key.startswith("LIFEBOAT_TEST_") or not key.startswith("LIFEBOAT_"))}
    env.update(LIFEBOAT_HOME=str(scratch / "home"), TMPDIR=str(scratch))
    process = subprocess.Popen([sys.executable, "-m", f"benchmarks.{name}", "--smoke"],
                               cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)
    try:
        output, _ = process.communicate(timeout=TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        _kill_session(process.pid)
        output, _ = process.communicate()
        pytest.fail(f"benchmarks.{name} --smoke ran over {TIMEOUT_SECONDS} s:\n{output[-4000:]}")
    finally:
        _kill_session(process.pid)
    return process.returncode, output


def _kill_session(session: int) -> None:
    try:
        os.killpg(session, signal.SIGKILL)
    except ProcessLookupError:
        pass  # nothing left running
