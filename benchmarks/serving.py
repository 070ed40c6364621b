"""Serving: Lifeboat's `/predict` against the seeds' Flask service, both as real processes.

A scratch LIFEBOAT_HOME gets the bundled passengers and a champion (`bootstrap`, as
`lifeboat up` does), then `lifeboat serve` (uvicorn, one process, then LIFEBOAT_WORKERS=2),
the Flask baseline (gunicorn, 2 workers, see flask_baseline.py) and an empty FastAPI
endpoint on the same uvicorn (fastapi_floor.py: what the framework and server alone cost
here) are started one after another, so each has the machine's two cores to itself and its
load generator. Each is sent single-record POST /predict requests by 1 and by 16 concurrent
clients: wrk (Debian's package; `make bench` installs it), keep-alive where the server keeps
connections (gunicorn's sync workers close each one, so a reconnect is part of that
request's latency). In-process, `Predictor.probabilities` is timed per record on the fast
path and on the pandas pipeline, and the rest of a request's server-side work beside it.

    python -m benchmarks.serving [--quick | --smoke] [--seconds S] [--repeats N]
    python -m benchmarks.serving --journal [--seconds S] [--repeats N]
    python -m benchmarks.serving --against TREE [--seconds S] [--repeats N]
    python -m benchmarks.serving --replicas [--seconds S] [--repeats N]

`--journal` measures only what the prediction journal costs: two `lifeboat serve` (one
process each), with LIFEBOAT_JOURNAL on and off, are sent 16 clients' requests by turns
(on, off, then off, on, ...: a slow minute of the shared machine hits both), and the
medians of their runs are compared; the target is at most 10% of throughput. `--against
TREE` compares this code's service with another checkout's the same way (see _trees.py).
`--replicas` runs `lifeboat cluster`'s topology (three replicas, on PostgreSQL and Redis:
LIFEBOAT_BENCH_DATABASE_URL names a database to create, LIFEBOAT_BENCH_REDIS_URL the Redis)
and sends 16 and 64 clients' requests by turns to HAProxy in front of 1, 2 and 3 of the
replicas, and to one replica directly (what the balancer costs).

Each load level is run `--repeats` times (default 3) after a warm-up: the table gives the
median p50 and p99 of those runs and every run's p99, since on a shared 2-core machine one
run's p99 can move by a fifth.

Exits 1 when no Lifeboat configuration meets every target of the issue.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import psycopg
from sqlalchemy import make_url

from benchmarks import _smoke, _trees, flask_baseline
from lifeboat.cluster import ClusterPorts, LocalCluster
from lifeboat.config import Settings
from lifeboat.datasets import DatasetSpec, load_spec
from lifeboat.db import Database
from lifeboat.features import feature_view
from lifeboat.orchestration.bootstrap import bootstrap
from lifeboat.registry import ModelRegistry
from lifeboat.scoring import PredictionLog, Predictor
from lifeboat.serving.schemas import record_model
from lifeboat.training.candidates import candidates

CLIENTS = (1, 16)
REPLICA_CLIENTS = (16, 64)
WORKERS = (1, 2)
BASELINE = "flask baseline"
FLOOR = "fastapi floor"
TARGET_SPEEDUP_16 = 20.0  # throughput at 16 clients, Lifeboat / baseline
TARGET_P99_MS_16 = 10.0
TARGET_P50_MS_1 = 1.0
JOURNAL_MAX_COST = 0.10  # of throughput at 16 clients


@dataclass(frozen=True)
class Load:
    requests: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float
    p99_runs: tuple[float, ...] = ()

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds

    @classmethod
    def median_of(cls, runs: list[Load]) -> Load:
        """All the runs' requests over all their seconds; the median run's percentiles."""
        return cls(sum(run.requests for run in runs), sum(run.errors for run in runs),
                   sum(run.seconds for run in runs),
                   float(np.median([run.p50_ms for run in runs])),
                   float(np.median([run.p99_ms for run in runs])),
                   tuple(run.p99_ms for run in runs))


def main(argv: list[str] | None = None) -> int:
    args, _ = _arguments().parse_known_args(argv)  # the rest belongs to other benchmarks
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: apt-get install wrk (make bench does)")
    seconds = args.seconds or _smoke.pick(args, 10.0, 3.0, 1.0)
    repeats = args.repeats or _smoke.pick(args, 3, 1, 1)
    spec = load_spec("titanic")
    records = _records(spec)
    if args.journal:
        return _journal_cost(spec, records, seconds, max(repeats, 5), args)
    if args.against:
        return _against(spec, records, seconds, max(repeats, 5), args)
    if args.replicas:
        return _replicas(records, seconds, repeats, args)
    with tempfile.TemporaryDirectory(prefix="lifeboat-bench-") as scratch:
        home = Path(scratch)
        settings = _trained_home(home / "home", spec, iterations=_smoke.pick(args, None, 2, 1))
        _in_process(settings, spec, records, rounds=_smoke.pick(args, 2000, 300, 50))
        baseline_model = home / "forest.pkl"
        flask_baseline.train(baseline_model)
        servers = {_name(workers): lambda port, workers=workers: _lifeboat(settings.home, port,
                                                                           workers)
                   for workers in WORKERS}
        servers[BASELINE] = lambda port: _baseline(baseline_model, port)
        servers[FLOOR] = _floor
        requests = _wrk_script(records, home)
        results = {}
        for name, server in servers.items():
            with server(_free_port()) as url:
                results[name] = {clients: _load(url, requests, clients, seconds, repeats)
                                 for clients in CLIENTS}
    _print_http(results, seconds, repeats)
    return _smoke.exit_code(_verdict(results), args)


def _journal_cost(spec: DatasetSpec, records: list[dict], seconds: float, turns: int,
                  args: argparse.Namespace) -> int:
    """Journal on against off at 16 clients, by turns; 0 when it costs at most 10%."""
    with tempfile.TemporaryDirectory(prefix="lifeboat-bench-") as scratch:
        home = Path(scratch)
        settings = _trained_home(home / "home", spec, iterations=_smoke.pick(args, None, 2, 1))
        runs = _by_turns(settings.home, {"on": {"LIFEBOAT_JOURNAL": "true"},
                                         "off": {"LIFEBOAT_JOURNAL": "false"}},
                         _wrk_script(records, home), seconds, turns)
    medians = _print_turns(runs, "journal", f"{turns} turns of {seconds:.0f} s each, "
                                            "journal on and off by turns")
    cost = 1 - medians["on"] / medians["off"]
    errors = sum(run.errors for mode_runs in runs.values() for run in mode_runs)
    met = cost <= JOURNAL_MAX_COST and errors == 0
    print(f"\n{'met   ' if met else 'MISSED'} the journal costs {cost:.1%} of throughput "
          f"(target at most {JOURNAL_MAX_COST:.0%}); {errors} failed requests")
    return _smoke.exit_code(met, args)


def _against(spec: DatasetSpec, records: list[dict], seconds: float, turns: int,
             args: argparse.Namespace) -> int:
    """This tree's service against another tree's, one process each, at 16 clients, by
    turns, on one home trained by the other tree's code. Prints the ratio; 0 unless a
    request failed."""
    sides = _trees.sides(args.against)
    with tempfile.TemporaryDirectory(prefix="lifeboat-bench-") as scratch:
        home = Path(scratch) / "home"
        iterations = _smoke.pick(args, None, 2, 1)
        _trees.bootstrap_with(args.against, {
            **_isolated(home), **({"LIFEBOAT_SEARCH_ITERATIONS": str(iterations)}
                                  if iterations else {})})
        runs = _by_turns(home, sides, _wrk_script(records, Path(scratch)), seconds, turns)
    medians = _print_turns(runs, "code", f"{turns} turns of {seconds:.0f} s each, by turns")
    mine, theirs = medians.values()
    errors = sum(run.errors for side_runs in runs.values() for run in side_runs)
    print(f"\nthis tree / {args.against}: {mine / theirs:.3f}x the throughput; "
          f"{errors} failed requests")
    return int(errors > 0)


def _replicas(records: list[dict], seconds: float, turns: int,
              args: argparse.Namespace) -> int:
    """HAProxy in front of 1, 2 and 3 replicas of a local cluster, and one replica without
    it, at 16 and 64 clients, by turns; 0 unless a request failed."""
    database_url = os.environ.get(
        "LIFEBOAT_BENCH_DATABASE_URL",
        f"postgresql+psycopg://postgres@127.0.0.1:5432/lifeboat_bench_{os.getpid()}")
    redis_url = os.environ.get("LIFEBOAT_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
    with tempfile.TemporaryDirectory(prefix="lifeboat-bench-") as scratch:
        settings = Settings(_env_file=None, home=Path(scratch) / "home", log_level="WARNING",
                            database_url=database_url, redis_url=redis_url,
                            search_iterations=_smoke.pick(args, None, 2, 1))
        local = LocalCluster(settings, ClusterPorts.free(3))
        try:
            local.start(lambda step: print(f"cluster: {step}", flush=True))
            runs = _replica_turns(local, _wrk_script(records, Path(scratch)), seconds, turns)
        finally:
            local.stop()
            for database in (database_url, f"{database_url}_mlflow"):
                _drop_database(database)
    _print_replicas(runs, seconds)
    return int(any(run.errors for variant in runs.values() for loads in variant.values()
                   for run in loads))


def _replica_turns(local: LocalCluster, requests: Path, seconds: float,
                   turns: int) -> dict[str, dict[int, list[Load]]]:
    with ExitStack() as balancers:
        urls = {f"HAProxy + {n} replica{'s' if n > 1 else ''}":
                balancers.enter_context(_balancer(local, n)) for n in (1, 2, 3)}
        urls["1 replica, no HAProxy"] = f"http://127.0.0.1:{local.ports.replica(1)}"
        names = list(urls)
        runs: dict[str, dict[int, list[Load]]] = {name: {} for name in names}
        for clients in REPLICA_CLIENTS:
            for url in urls.values():
                _wrk(url, requests, clients, 1.0)  # warm-up, not counted
            for turn in range(turns):
                for name in names if turn % 2 == 0 else names[::-1]:
                    runs[name].setdefault(clients, []).append(
                        _wrk(urls[name], requests, clients, seconds))
    return runs


@contextmanager
def _balancer(local: LocalCluster, replicas: int) -> Iterator[str]:
    port = _free_port()
    role = local.balancer(replicas, port).start()
    try:
        role.wait_ready(60)
        yield f"http://127.0.0.1:{port}"
    finally:
        role.stop()


def _print_replicas(runs: dict[str, dict[int, list[Load]]], seconds: float) -> None:
    turns = len(next(iter(runs.values()))[REPLICA_CLIENTS[0]])
    print(f"\nsingle-record POST /predict through HAProxy, {turns} turns of {seconds:.0f} s "
          "per row, by turns (median req/s, p50 and p99)")
    print(f"{'served by':<26}{'clients':>8}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}"
          f"{'errors':>8}  req/s of each run")
    one = "HAProxy + 1 replica"
    for name, by_clients in runs.items():
        for clients, loads in by_clients.items():
            rate = float(np.median([load.throughput for load in loads]))
            base = float(np.median([load.throughput for load in runs[one][clients]]))
            print(f"{name:<26}{clients:>8}{rate:>9.0f}"
                  f"{np.median([load.p50_ms for load in loads]):>9.2f}"
                  f"{np.median([load.p99_ms for load in loads]):>9.2f}"
                  f"{sum(load.errors for load in loads):>8}  "
                  + " / ".join(f"{load.throughput:.0f}" for load in loads)
                  + f"  ({rate / base:.2f}x {one})")


def _drop_database(url: str) -> None:
    parsed = make_url(url)
    server = parsed.set(drivername="postgresql", database="postgres")
    with psycopg.connect(server.render_as_string(hide_password=False),
                         autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)')


def _by_turns(home: Path, variants: dict[str, dict[str, str]], requests: Path,
              seconds: float, turns: int) -> dict[str, list[Load]]:
    """One `lifeboat serve` per variant (its extra environment), all on one home, sent 16
    clients' requests in turns: first to last, then last to first, and so on."""
    names = list(variants)
    runs: dict[str, list[Load]] = {name: [] for name in names}
    with ExitStack() as servers:
        urls = {name: servers.enter_context(_lifeboat(home, _free_port(), 1, extra))
                for name, extra in variants.items()}
        for url in urls.values():
            _wrk(url, requests, 16, 1.0)  # warm-up, not counted
        for turn in range(turns):
            for name in names if turn % 2 == 0 else names[::-1]:
                runs[name].append(_wrk(urls[name], requests, 16, seconds))
    return runs


def _print_turns(runs: dict[str, list[Load]], label: str, title: str) -> dict[str, float]:
    """The table of a by-turns run; each variant's median throughput."""
    print(f"\nsingle-record POST /predict, 16 clients, 1 process, {title}")
    width = max(len(label), *(len(name) for name in runs)) + 2
    print(f"{label:<{width}}{'median req/s':>13}{'median p50 ms':>14}{'median p99 ms':>14}"
          "  req/s of each run")
    medians = {}
    for name, name_runs in runs.items():
        rates = [run.throughput for run in name_runs]
        medians[name] = float(np.median(rates))
        print(f"{name:<{width}}{medians[name]:>13.0f}"
              f"{np.median([run.p50_ms for run in name_runs]):>14.2f}"
              f"{np.median([run.p99_ms for run in name_runs]):>14.2f}  "
              + " / ".join(f"{rate:.0f}" for rate in rates))
    return medians


def _name(workers: int) -> str:
    return f"lifeboat {workers} worker{'s' if workers > 1 else ''}"


def _records(spec: DatasetSpec) -> list[dict]:
    """The bundled passengers as request bodies (missing fields left out, as clients send)."""
    frame = pd.read_csv(spec.bundled_path(), na_values=spec.missing_values, keep_default_na=False)
    rows = frame[spec.input_columns].astype(object).to_dict("records")
    return [{k: v for k, v in row.items() if not pd.isna(v)} for row in rows]


def _trained_home(home: Path, spec: DatasetSpec, iterations: int | None) -> Settings:
    settings = Settings(_env_file=None, home=home, database_url=None, mlflow_tracking_uri=None,
                        redis_url=None, search_iterations=iterations)
    started = time.perf_counter()
    database = Database(settings.db_url)
    report = bootstrap(settings, database, spec)
    database.dispose()
    print(f"trained champion {report.champion.name} v{report.champion.version} "
          f"in {time.perf_counter() - started:.0f} s")
    return settings


def _in_process(settings: Settings, spec: DatasetSpec, records: list[dict], rounds: int) -> None:
    """Per-record latency of `Predictor.probabilities`, fast path vs pandas, for the champion
    and for each candidate classifier; then the rest of a request's server-side work."""
    view = feature_view(spec)
    version, champion = ModelRegistry(settings, spec.model_name).load_champion()
    frame = pd.read_csv(spec.bundled_path(), na_values=spec.missing_values, keep_default_na=False)
    classifier = champion.pipeline_.named_steps["classifier"]  # inside its calibration
    models = {f"champion ({type(classifier).__name__}, calibrated)": champion}
    for candidate in candidates(spec):
        models[candidate.name] = candidate.pipeline.fit(view.from_records(frame),
                                                        frame["survived"].to_numpy())
    print(f"\nin process, one record per call, {rounds} calls (µs)")
    print(f"{'model':<42}{'fast p50':>10}{'fast p99':>10}{'pandas p50':>12}{'pandas p99':>12}"
          f"{'speed-up':>10}")
    for name, model in models.items():
        predictor = Predictor(spec, model, version, view)
        fast = _timed(lambda r: predictor.probabilities([r]), records, rounds)
        pandas = _timed(lambda r: predictor.reference_probabilities([r]), records,
                        max(rounds // 10, 50))
        print(f"{name:<42}{np.median(fast):>10.0f}{np.percentile(fast, 99):>10.0f}"
              f"{np.median(pandas):>12.0f}{np.percentile(pandas, 99):>12.0f}"
              f"{np.median(pandas) / np.median(fast):>9.0f}x")
    _request_parts(settings, spec, Predictor(spec, champion, version, view), records, rounds)


def _request_parts(settings: Settings, spec: DatasetSpec, predictor: Predictor,
                   records: list[dict], rounds: int) -> None:
    """Where a /predict request's server-side time goes, part by part, on the champion."""
    record_type = record_model(spec)
    database = Database(settings.db_url)
    prediction_log = PredictionLog(database, settings.resolved_home / "spool")
    parts: dict[str, Callable[[dict], object]] = {
        "validate the record (pydantic)": lambda r: record_type.model_validate(r).model_dump(),
        "Predictor.predict (fast path + Prediction rows)": lambda r: predictor.predict([r], "api"),
        "... and queue it in the prediction log":
            lambda r: prediction_log.submit(predictor.predict([r], "api")),
    }
    print("\nserver-side parts of one /predict request (µs)")
    print(f"{'part':<52}{'p50':>8}{'p99':>8}")
    for name, part in parts.items():
        timings = _timed(part, records, rounds)
        print(f"{name:<52}{np.median(timings):>8.0f}{np.percentile(timings, 99):>8.0f}")
    prediction_log.close()
    database.dispose()


def _timed(call: Callable[[dict], object], records: list[dict], rounds: int) -> np.ndarray:
    for record in records[:20]:  # warm-up: first calls fill caches and allocate
        call(record)
    timings = []
    for i in range(rounds):
        record = records[i % len(records)]
        started = time.perf_counter()
        call(record)
        timings.append((time.perf_counter() - started) * 1e6)
    return np.array(timings)


@contextmanager
def _lifeboat(home: Path, port: int, workers: int,
             extra: dict[str, str] | None = None) -> Iterator[str]:
    env = {**_isolated(home), "LIFEBOAT_PORT": str(port), "LIFEBOAT_LOG_LEVEL": "WARNING",
           "LIFEBOAT_WORKERS": str(workers), **(extra or {})}
    command = [sys.executable, "-m", "lifeboat", "serve"]
    with _process(command, env, f"http://127.0.0.1:{port}", "/ready") as url:
        yield url


def _isolated(home: Path) -> dict[str, str]:
    """This environment with `home` as LIFEBOAT_HOME and none of its services."""
    env = {**os.environ, "LIFEBOAT_HOME": str(home)}
    for name in ("DATABASE_URL", "MLFLOW_TRACKING_URI", "REDIS_URL", "PROMETHEUS_MULTIPROC_DIR"):
        env.pop(name, None)
    return env


@contextmanager
def _baseline(model: Path, port: int) -> Iterator[str]:
    env = {**os.environ, "BASELINE_MODEL": str(model)}
    command = [sys.executable, "-m", "gunicorn", "--workers", "2", "--bind",
               f"127.0.0.1:{port}", "--log-level", "warning",
               "benchmarks.flask_baseline:create_app()"]
    with _process(command, env, f"http://127.0.0.1:{port}", None) as url:
        yield url


@contextmanager
def _floor(port: int) -> Iterator[str]:
    command = [sys.executable, "-m", "uvicorn", "--port", str(port), "--log-level", "warning",
               "benchmarks.fastapi_floor:app"]
    with _process(command, dict(os.environ), f"http://127.0.0.1:{port}", None) as url:
        yield url


@contextmanager
def _process(command: list[str], env: dict[str, str], url: str,
             ready_path: str | None) -> Iterator[str]:
    """Starts a server, waits until it answers (ready, or a first prediction), stops it."""
    process = subprocess.Popen(command, env=env, cwd=Path(__file__).parent.parent,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_until_serving(process, url, ready_path)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


def _wait_until_serving(process: subprocess.Popen, url: str, ready_path: str | None) -> None:
    probe = {"pclass": 3, "name": "Braund, Mr. Owen Harris", "sex": "male"}
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{url} exited: {process.stderr.read().decode()[-2000:]}")
        try:
            response = (httpx.get(url + ready_path) if ready_path
                        else httpx.post(url + "/predict", json=probe))
            if response.status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"{url} did not start serving within 120 s")


def _load(url: str, requests: Path, clients: int, seconds: float, repeats: int) -> Load:
    _wrk(url, requests, clients, 1.0)  # warm-up, not counted
    return Load.median_of([_wrk(url, requests, clients, seconds) for _ in range(repeats)])


def _wrk(url: str, requests: Path, clients: int, seconds: float) -> Load:
    """`clients` keep-alive connections, each sending its next request once answered; wrk's
    own latency histogram gives the percentiles."""
    command = ["wrk", f"-t{min(clients, 2)}", f"-c{clients}", f"-d{round(seconds)}s", "-s",
               str(requests), url]
    report = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return Load(**json.loads(report.strip().splitlines()[-1]))


def _wrk_script(records: list[dict], folder: Path) -> Path:
    """A wrk script that sends the passengers in turn as single-record POST /predict bodies
    and prints its counts and percentiles as one JSON line."""
    bodies = ",\n".join(f"[==[{json.dumps(record)}]==]" for record in records)
    script = folder / "predict.lua"
    script.write_text(_WRK_SCRIPT.replace("BODIES", bodies))
    return script


_WRK_SCRIPT = """
local bodies = {BODIES}
local headers = {["Content-Type"] = "application/json"}
local sent = 0
request = function()
  sent = sent + 1
  return wrk.format("POST", "/predict", headers, bodies[sent % #bodies + 1])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "errors": %d, "seconds": %f, "p50_ms": %f, "p99_ms": %f}\\n',
    summary.requests, e.connect + e.read + e.write + e.status + e.timeout,
    summary.duration / 1e6, latency:percentile(50) / 1e3, latency:percentile(99) / 1e3))
end
"""


def _print_http(results: dict[str, dict[int, Load]], seconds: float, repeats: int) -> None:
    print(f"\nsingle-record POST /predict over HTTP, {repeats} runs of {seconds:.0f} s per row "
          "(median p50 and p99)")
    print(f"{'service':<20}{'clients':>8}{'requests':>10}{'errors':>8}{'req/s':>9}"
          f"{'p50 ms':>9}{'p99 ms':>9}  p99 of each run")
    for name, loads in results.items():
        for clients, load in loads.items():
            runs = " / ".join(f"{p99:.2f}" for p99 in load.p99_runs)
            print(f"{name:<20}{clients:>8}{load.requests:>10}{load.errors:>8}"
                  f"{load.throughput:>9.0f}{load.p50_ms:>9.2f}{load.p99_ms:>9.2f}  {runs}")
    theirs, floor = results[BASELINE], results[FLOOR]
    for name in map(_name, WORKERS):
        ours = results[name]
        print(f"\n{name} / baseline")
        for clients in CLIENTS:
            speed_up = ours[clients].throughput / theirs[clients].throughput
            print(f"  {clients:>2} clients: throughput {speed_up:.1f}x, p50 "
                  f"{theirs[clients].p50_ms / ours[clients].p50_ms:.1f}x lower, "
                  f"p99 {theirs[clients].p99_ms / ours[clients].p99_ms:.1f}x lower")
        share = floor[16].throughput / ours[16].throughput
        print(f"  at 16 clients the empty FastAPI endpoint does {share:.1f}x its throughput: "
              f"{1 / share:.0%} of the framework's ceiling")


def _verdict(results: dict[str, dict[int, Load]]) -> bool:
    """The issue's targets, checked for each Lifeboat configuration; True when one meets all."""
    met = [_checks(name, results[name], results[BASELINE]) for name in map(_name, WORKERS)]
    return any(met)


def _checks(name: str, ours: dict[int, Load], theirs: dict[int, Load]) -> bool:
    checks = {
        f"throughput at 16 clients >= {TARGET_SPEEDUP_16:.0f}x the baseline":
            ours[16].throughput >= TARGET_SPEEDUP_16 * theirs[16].throughput,
        f"p99 at 16 clients <= {TARGET_P99_MS_16:.0f} ms":
            ours[16].p99_ms <= TARGET_P99_MS_16,
        f"p50 at 1 client <= {TARGET_P50_MS_1:.0f} ms": ours[1].p50_ms <= TARGET_P50_MS_1,
        "no failed requests": ours[1].errors + ours[16].errors == 0,
    }
    print(f"\n{name}")
    for check, passed in checks.items():
        print(f"{'met   ' if passed else 'MISSED'} {check}")
    return all(checks.values())


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _arguments() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.serving", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="2 search iterations, 3 s per load level")
    parser.add_argument("--seconds", type=float, default=None, help="seconds per run")
    parser.add_argument("--repeats", type=int, default=None,
                        help="runs per load level (default 3; 1 with --quick)")
    parser.add_argument("--journal", action="store_true",
                        help="only journal on against off at 16 clients, by turns "
                             "(at least 5 turns)")
    parser.add_argument("--replicas", action="store_true",
                        help="only HAProxy in front of 1, 2 and 3 replicas, at 16 and 64 "
                             "clients, by turns (PostgreSQL and Redis)")
    _trees.add_flag(parser)
    _smoke.add_flag(parser)  # 1 s per load level, a one-iteration search, 50 calls in process
    return parser


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
