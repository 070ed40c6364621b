"""The command line's answer time: `lifeboat --help`, `lifeboat models`, `lifeboat jobs`.

A scratch home is prepared the way a user does it, with `lifeboat bootstrap` (a small
search budget: the model's quality is not measured here) and one `lifeboat ingest`, so
that `models` lists a version and `jobs` lists runs. Then each command is run as a new
process, as the console script, the three taking turns, and the wall time of each run is
kept; the table shows the median, the fastest and the slowest. The machine's load average
is printed beside them: the figures are wall times on whatever else it runs.

Targets (issue 24): `--help` at most 0.5 s, a listing at most 1 s.

    python -m benchmarks.cli [--runs N | --smoke]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import _smoke
from lifeboat.datasets import load_spec

COMMANDS = {"lifeboat --help": (["--help"], 0.5), "lifeboat models": (["models"], 1.0),
            "lifeboat jobs": (["jobs"], 1.0)}
RUNS, SMOKE_RUNS = 11, 2


def main(argv: list[str] | None = None) -> int:
    args, _ = _arguments().parse_known_args(argv)
    runs = SMOKE_RUNS if args.smoke else args.runs
    with tempfile.TemporaryDirectory(prefix="lifeboat-bench-cli-") as scratch:
        env = _environment(Path(scratch) / ".lifeboat")
        started = time.perf_counter()
        _prepare(env)
        print(f"home prepared (bootstrap + ingest) in {time.perf_counter() - started:.0f} s")
        load = os.getloadavg()[0]
        seconds = _timed(env, runs)
    print(f"{runs} runs of each command, taking turns; load average before them: {load:.2f} "
          f"on {os.cpu_count()} cores")
    print(f"{'command':<18} {'median s':>9} {'min s':>7} {'max s':>7} {'target s':>9}")
    met = True
    for label, (_, target) in COMMANDS.items():
        median = statistics.median(seconds[label])
        met &= median <= target
        print(f"{label:<18} {median:>9.3f} {min(seconds[label]):>7.3f} "
              f"{max(seconds[label]):>7.3f} {target:>9.1f}")
    print("targets " + ("met" if met else "MISSED"))
    return _smoke.exit_code(met, args)


def _lifeboat() -> list[str]:
    """The console script beside this interpreter, as a user runs it; else `-m lifeboat`."""
    script = Path(sys.executable).with_name("lifeboat")
    return [str(script)] if script.exists() else [sys.executable, "-m", "lifeboat"]


def _environment(home: Path) -> dict[str, str]:
    """This environment with the scratch home and embedded stores, none of the developer's."""
    env = {key: value for key, value in os.environ.items()
           if key not in ("DATABASE_URL", "REDIS_URL", "MLFLOW_TRACKING_URI")
           and not key.startswith("LIFEBOAT_")}
    return {**env, "LIFEBOAT_HOME": str(home), "LIFEBOAT_SEARCH_ITERATIONS": "2"}


def _prepare(env: dict[str, str]) -> None:
    bundled = str(load_spec("titanic").bundled_path())
    for command in (["bootstrap"], ["ingest", bundled]):
        subprocess.run([*_lifeboat(), *command], env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _timed(env: dict[str, str], runs: int) -> dict[str, list[float]]:
    seconds: dict[str, list[float]] = {label: [] for label in COMMANDS}
    for _ in range(runs):
        for label, (arguments, _) in COMMANDS.items():
            started = time.perf_counter()
            subprocess.run([*_lifeboat(), *arguments], env=env, check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            seconds[label].append(time.perf_counter() - started)
    return seconds


def _arguments() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cli", description=__doc__)
    parser.add_argument("--runs", type=int, default=RUNS, help="runs of each command")
    _smoke.add_flag(parser)
    return parser


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
