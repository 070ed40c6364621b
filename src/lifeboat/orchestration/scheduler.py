"""The embedded scheduler and watcher: Lifeboat's jobs without Airflow.

The scheduler runs each job at its interval, the monitoring loop (the `drift` job) among
them: this is where the loop runs, in `lifeboat up`'s jobs process or `lifeboat schedule`,
never in a serving process. The watcher reacts to files as they land (a new file in raw/ is
ingested; the `._SUCCESS` marker ingestion leaves beside its good/ file has it scored).
Both run the same recorded jobs as the CLI and Airflow, and never two runs of one job at
once; exactly-once comes from the jobs (checksums, claims), not from here, so several
schedulers and watchers may run at once.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import threading
import time
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from fsspec.implementations.local import LocalFileSystem
from watchfiles import Change, watch

from lifeboat.config import Settings
from lifeboat.datasets import DatasetSpec
from lifeboat.errors import JobFailed
from lifeboat.ingest import GOOD, RAW
from lifeboat.lifecycle import exit_with_parent
from lifeboat.logs import configure_logging
from lifeboat.metrics import scheduler_turn, serve_process_metrics
from lifeboat.orchestration.file_scoring import MARKER
from lifeboat.orchestration.jobs import JobContext, run

log = logging.getLogger(__name__)
# The scheduler and the watcher share a process in `lifeboat up`: the jobs that take files
# from the landing zone run one at a time there, so the two never ingest the same file at
# once. A monitoring turn takes none: files that land during its retrain (minutes) are
# still taken as they land.
_LANDING_JOBS = frozenset({"ingest", "score"})
_one_landing_job_at_a_time = threading.Lock()


@dataclass(frozen=True)
class Every:
    """A job run on one dataset at an interval, with the arguments it is run with."""

    job: str
    seconds: float
    spec: DatasetSpec
    arguments: dict[str, Any] = field(default_factory=dict)


def schedule(settings: Settings, specs: list[DatasetSpec]) -> list[Every]:
    """The periodic jobs of the datasets served, the default first: ingesting and scoring
    the landing zone's files, which are the default dataset's, and a turn of the
    monitoring loop for every dataset. A turn is skipped when another process checked
    that dataset within most of the interval: several schedulers on one database (the
    replicas of `lifeboat up`) check once an interval between them."""
    default = specs[0]
    landing = [Every("ingest", settings.ingest_every_seconds, default),
               Every("score", settings.score_every_seconds, default)]
    cadence = settings.drift_check_seconds
    return landing + [Every("drift", cadence, spec, {"unless_checked_within": 0.9 * cadence})
                      for spec in specs]


def run_schedule(context: JobContext, jobs: list[Every], stop: threading.Event) -> None:
    """Each job now, then at its interval, until `stop` is set. `context` gives the
    settings and the database; each job runs on its own dataset. A failed run is recorded
    and logged; the schedule goes on."""
    due = {(every.job, every.spec.name): time.monotonic() for every in jobs}
    while not stop.is_set():
        for every in jobs:
            key = (every.job, every.spec.name)
            if time.monotonic() >= due[key] and not stop.is_set():
                _run_logged(replace(context, spec=every.spec), every.job, "schedule",
                            **every.arguments)
                scheduler_turn(every.spec.name, every.job, every.seconds)
                due[key] = time.monotonic() + every.seconds
        stop.wait(max(0.0, min(due.values()) - time.monotonic()))


def watch_landing_zone(context: JobContext, stop: threading.Event) -> None:
    """Ingests and scores files as they land, until `stop` is set. Files that landed while
    nothing watched are taken first."""
    _run_logged(context, "ingest", "watch")
    _run_logged(context, "score", "watch")
    if isinstance(context.zone.fs, LocalFileSystem):
        _watch_events(context, stop)
    else:
        _poll(context, stop)


def _watch_events(context: JobContext, stop: threading.Event) -> None:
    """A quiet interval (no event within LIFEBOAT_WATCH_POLL_SECONDS) also looks at raw/:
    a file that landed between the first ingest and the start of watching sends no event."""
    zone = context.zone
    folders = [Path(zone.path(RAW)), Path(zone.path(GOOD))]
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
    for changes in watch(*folders, stop_event=stop, recursive=False, yield_on_timeout=True,
                         rust_timeout=int(context.settings.watch_poll_seconds * 1000)):
        landed = {Path(path) for change, path in changes if change != Change.deleted}
        if (any(path.parent == folders[0] and not path.name.startswith(".") for path in landed)
                or (not changes and zone.waiting())):
            _run_logged(context, "ingest", "watch")
        if any(path.parent == folders[1] and path.name.endswith(MARKER) for path in landed):
            _run_logged(context, "score", "watch")


def _poll(context: JobContext, stop: threading.Event) -> None:
    """Object storage sends no events: the raw/ listing is the queue (ingestion removes
    what it took), and good/ files are claimed once each, so a listing per interval is the
    whole checkpoint."""
    while not stop.wait(context.settings.watch_poll_seconds):
        if context.zone.waiting():
            _run_logged(context, "ingest", "watch")
            _run_logged(context, "score", "watch")


def _run_logged(context: JobContext, job: str, trigger: str, **arguments: Any) -> None:
    with _one_landing_job_at_a_time if job in _LANDING_JOBS else nullcontext():
        try:
            run(context, job, trigger, **arguments)
        except JobFailed as exc:
            log.error("%s", exc)


def start_embedded_jobs(settings: Settings, jobs: list[Every]) -> multiprocessing.Process:
    """The scheduler (running `jobs`) and the watcher beside `lifeboat up`'s service, in a
    process of their own: ingesting or scoring a big file, or a turn of the monitoring
    loop, must not hold the service's GIL. `up` stops it (`lifecycle.stop_child`) however
    it is stopped, and it exits by itself if `up` dies without a chance to (kill -9): its
    jobs are exactly-once, so stopping one midway loses nothing."""
    process = multiprocessing.get_context("spawn").Process(
        target=_embedded_jobs, args=(settings, jobs), name="lifeboat-jobs", daemon=True)
    process.start()
    return process


def _embedded_jobs(settings: Settings, jobs: list[Every]) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for `up`, which stops this process
    exit_with_parent()
    configure_logging(settings.log_level)
    serve_process_metrics(*settings.jobs_metrics_address)
    context = JobContext.from_settings(settings)
    stop = threading.Event()
    watcher = threading.Thread(target=watch_landing_zone, args=(context, stop),
                               name="lifeboat-watch", daemon=True)
    watcher.start()
    run_schedule(context, jobs, stop)


def describe(jobs: list[Every]) -> str:
    """The schedule by dataset: "titanic: ingest every 60 s, …; customers: drift every 300 s"."""
    datasets: dict[str, list[str]] = {}
    for every in jobs:
        datasets.setdefault(every.spec.name, []).append(f"{every.job} every {every.seconds:g} s")
    return "; ".join(f"{name}: {', '.join(runs)}" for name, runs in datasets.items())

