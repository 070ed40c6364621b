"""The embedded scheduler and watcher: Lifeboat's jobs without Airflow.

The scheduler runs each job at its interval; the watcher reacts to files as they land (a new
file in raw/ is ingested; the `._SUCCESS` marker ingestion leaves beside its good/ file has it
scored). Both run the same recorded jobs as the CLI and Airflow, one at a time, so a run
never overlaps itself; exactly-once comes from the jobs (checksums, claims), not from here,
so several schedulers and watchers may run at once.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from fsspec.implementations.local import LocalFileSystem
from watchfiles import Change, watch

from lifeboat.config import Settings
from lifeboat.errors import JobFailed
from lifeboat.ingest import GOOD, RAW
from lifeboat.lifecycle import exit_with_parent
from lifeboat.logs import configure_logging
from lifeboat.orchestration.file_scoring import MARKER
from lifeboat.orchestration.jobs import JobContext, run

log = logging.getLogger(__name__)
# The scheduler and the watcher share a process in `lifeboat up`: one job at a time there,
# so the two never ingest the same file at once.
_one_job_at_a_time = threading.Lock()


@dataclass(frozen=True)
class Every:
    job: str
    seconds: float


def schedule(settings: Settings, with_drift: bool = True) -> list[Every]:
    """The periodic jobs. Drift is left out inside `lifeboat up`: the service checks it."""
    jobs = [Every("ingest", settings.ingest_every_seconds),
            Every("score", settings.score_every_seconds)]
    return jobs + [Every("drift", settings.drift_check_seconds)] if with_drift else jobs


def run_schedule(context: JobContext, jobs: list[Every], stop: threading.Event) -> None:
    """Each job now, then at its interval, until `stop` is set. A failed run is recorded and
    logged; the schedule goes on."""
    due = {every.job: time.monotonic() for every in jobs}
    while not stop.is_set():
        for every in jobs:
            if time.monotonic() >= due[every.job] and not stop.is_set():
                _run_logged(context, every.job, "schedule")
                due[every.job] = time.monotonic() + every.seconds
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


def _run_logged(context: JobContext, job: str, trigger: str) -> None:
    with _one_job_at_a_time:
        try:
            run(context, job, trigger)
        except JobFailed as exc:
            log.error("%s", exc)


def start_embedded_jobs(settings: Settings) -> multiprocessing.Process:
    """The scheduler and the watcher beside `lifeboat up`'s service, in a process of their
    own: ingesting or scoring a big file must not hold the service's GIL. `up` stops it
    (`lifecycle.stop_child`) however it is stopped, and it exits by itself if `up` dies
    without a chance to (kill -9): its jobs are exactly-once, so stopping one midway
    loses nothing."""
    process = multiprocessing.get_context("spawn").Process(
        target=_embedded_jobs, args=(settings,), name="lifeboat-jobs", daemon=True)
    process.start()
    return process


def _embedded_jobs(settings: Settings) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for `up`, which stops this process
    exit_with_parent()
    configure_logging(settings.log_level)
    context = JobContext.from_settings(settings)
    stop = threading.Event()
    watcher = threading.Thread(target=watch_landing_zone, args=(context, stop),
                               name="lifeboat-watch", daemon=True)
    watcher.start()
    run_schedule(context, schedule(settings, with_drift=False), stop)


def describe(jobs: list[Every]) -> str:
    return ", ".join(f"{every.job} every {every.seconds:g} s" for every in jobs)

