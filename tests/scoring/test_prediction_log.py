"""The prediction log writes off the request path, in batches, and loses nothing: not when the
database goes away mid-traffic, not when the process stops with rows still waiting.

Every test runs on SQLite and on the real PostgreSQL server; the outage under live traffic
cuts a TCP proxy between the writer and PostgreSQL.
"""

from __future__ import annotations

import json
import math
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import event, make_url, select

from lifeboat.db import Database, Prediction
from lifeboat.db.models import utcnow
from lifeboat.scoring import prediction_history as history
from lifeboat.scoring.prediction_log import PredictionLog
from tests.support.paths import ROOT
from tests.support.tcp_proxy import TcpProxy

OpenLog = Callable[..., PredictionLog]
# Quotes, a backslash and non-ASCII: what array and JSON escaping get wrong first.
NAME = 'Brünnhilde "Hilde" O\'Neil, Mrs. \\ née {Smith}'


def make_predictions(count: int, **overrides: object) -> list[Prediction]:
    return [Prediction(**{
        "id": str(uuid.uuid4()), "created_at": utcnow(), "dataset": "titanic", "source": "api",
        "input": {"n": n, "name": NAME}, "prediction": n % 2,
        "label": "survived" if n % 2 else "died", "probability": 0.25, "model_name": "titanic",
        "model_version": "3", "latency_ms": 1.5, **overrides}) for n in range(count)]


def ids_of(predictions: list[Prediction]) -> list[str]:
    return [prediction.id for prediction in predictions]


def logged_ids(database: Database) -> list[str]:
    with database.session() as session:
        return list(session.scalars(select(Prediction.id)))


def spool_files(folder: Path, prefix: str = "predictions") -> list[Path]:
    return sorted(folder.glob(f"{prefix}-*.jsonl"))


def spilled_total() -> float:
    return REGISTRY.get_sample_value("lifeboat_prediction_log_spilled_total") or 0.0


def wait_until(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds} s waiting until {what}")
        time.sleep(0.01)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def open_log() -> Iterator[OpenLog]:
    """Opens logs that are closed at the end even when the test fails."""
    opened: list[PredictionLog] = []

    def open_(database: Database, folder: Path, **options: object) -> PredictionLog:
        opened.append(PredictionLog(database, folder, **options))
        return opened[-1]

    yield open_
    for prediction_log in opened:
        prediction_log.close(timeout=5)


@pytest.fixture
def unreachable(database: Database, tmp_path: Path) -> Iterator[Database]:
    """A database of the same kind that cannot be reached: nothing listens on the port, or
    the SQLite file's folder does not exist."""
    if database.engine.dialect.name == "sqlite":
        url = f"sqlite:///{tmp_path / 'gone' / 'lifeboat.db'}"
    else:
        url = make_url(database.url).set(port=free_port()).render_as_string(hide_password=False)
    gone = Database(url)
    yield gone
    gone.dispose()


def test_each_batch_goes_in_as_one_insert_statement(database: Database, tmp_path: Path,
                                                    open_log: OpenLog) -> None:
    statements: list[str] = []
    event.listen(database.engine, "before_cursor_execute",
                 lambda _c, _cur, statement, *_: statements.append(statement))
    served = make_predictions(1200)
    prediction_log = open_log(database, tmp_path / "spool", batch_size=500)

    prediction_log.submit(served)
    prediction_log.close()

    inserts = [s for s in statements
               if s.lstrip().upper().replace('"', "").startswith("INSERT INTO PREDICTIONS")]
    assert len(inserts) == 3  # 500 + 500 + 200 rows, one statement each
    assert sorted(logged_ids(database)) == sorted(ids_of(served))
    total, rows = history.past_predictions(database, dataset="titanic", limit=1)
    assert total == 1200
    with database.session() as session:
        row = session.get(Prediction, served[7].id)
    assert (row.input, row.label, row.probability) == ({"n": 7, "name": NAME},
                                                       "survived", 0.25)
    assert history.as_utc(row.created_at) == served[7].created_at


def test_features_go_in_as_json_with_missing_and_infinite_values_as_null(
        database: Database, tmp_path: Path, open_log: OpenLog) -> None:
    """NaN (a missing number) and infinities have no JSON form, and PostgreSQL's json type
    refuses them: the writer makes them null."""
    features = {"pclass": 3.0, "age": math.nan, "fare": math.inf, "title": NAME, "deck": None}
    served = make_predictions(1, entity_id="p-1", features=features)
    prediction_log = open_log(database, tmp_path / "spool")
    prediction_log.submit(served)
    assert prediction_log.flush(timeout=5) is True
    with database.session() as session:
        row = session.get(Prediction, served[0].id)
    assert row.entity_id == "p-1"
    assert row.features == {"pclass": 3.0, "age": None, "fare": None, "title": NAME, "deck": None}


def test_a_spilled_row_keeps_its_features_and_an_older_spool_line_replays_without_them(
        database: Database, unreachable: Database, tmp_path: Path, open_log: OpenLog) -> None:
    folder = tmp_path / "spool"
    down = PredictionLog(unreachable, folder, retry_seconds=60)
    served = make_predictions(1, entity_id="p-2", features={"age": math.nan, "sex": "male"})
    down.submit(served)
    down.close()
    older = make_predictions(1)[0]
    line = {column.name: getattr(older, column.key) for column in Prediction.__table__.columns
            if column.name not in ("entity_id", "features")}  # as spilled before 0009
    (folder / "predictions-20260101T000000000000-1-old.jsonl").write_text(
        json.dumps({**line, "created_at": older.created_at.isoformat()}) + "\n")

    open_log(database, folder).close(timeout=20)
    with database.session() as session:
        spilled, old = session.get(Prediction, served[0].id), session.get(Prediction, older.id)
    assert (spilled.entity_id, spilled.features) == ("p-2", {"age": None, "sex": "male"})
    assert (old.entity_id, old.features, old.input) == (None, None, older.input)
    assert spool_files(folder) == []


def test_flush_makes_a_request_s_rows_readable(database: Database, tmp_path: Path,
                                               open_log: OpenLog) -> None:
    prediction_log = open_log(database, tmp_path / "spool")
    for _ in range(5):
        served = make_predictions(3)
        prediction_log.submit(served)
        assert prediction_log.flush(timeout=5) is True
        assert set(ids_of(served)) <= set(logged_ids(database))
    assert prediction_log.status() == "ok"


def test_close_drains_the_queue_into_the_database(database: Database, tmp_path: Path,
                                                  open_log: OpenLog) -> None:
    served = make_predictions(5000)
    prediction_log = open_log(database, tmp_path / "spool", batch_size=100)

    for start in range(0, 5000, 1000):
        prediction_log.submit(served[start:start + 1000])
    prediction_log.close(timeout=60)

    assert sorted(logged_ids(database)) == sorted(ids_of(served))
    assert spool_files(tmp_path / "spool") == []


def test_an_unreachable_database_spills_everything_and_ready_says_so(
        unreachable: Database, tmp_path: Path, open_log: OpenLog) -> None:
    before = spilled_total()
    prediction_log = open_log(unreachable, tmp_path / "spool", capacity=25, retry_seconds=60)

    for _ in range(20):
        prediction_log.submit(make_predictions(10))  # past capacity, submit spills itself

    assert prediction_log.flush(timeout=10) is False
    status = prediction_log.status()
    assert status.startswith("degraded: 200 predictions waiting, database unreachable ("), status
    assert spilled_total() - before == 200
    prediction_log.close()
    lines = sum(len(path.read_text().splitlines()) for path in spool_files(tmp_path / "spool"))
    assert lines == 200


def spill(database: Database, folder: Path, count: int) -> list[Prediction]:
    """What a process whose database was down leaves behind when it stops."""
    prediction_log = PredictionLog(database, folder, retry_seconds=60)
    served = make_predictions(count)
    prediction_log.submit(served)
    prediction_log.close()
    assert spool_files(folder), "nothing was spilled"
    return served


def test_a_restart_writes_what_the_last_process_spilled(
        database: Database, unreachable: Database, tmp_path: Path, open_log: OpenLog) -> None:
    served = spill(unreachable, tmp_path / "spool", 700)
    assert logged_ids(database) == []

    prediction_log = open_log(database, tmp_path / "spool", batch_size=300)
    wait_until(lambda: prediction_log.status() == "ok", 20, "the spool is replayed")

    assert sorted(logged_ids(database)) == sorted(ids_of(served))
    assert spool_files(tmp_path / "spool") == []


def test_replay_is_exactly_once_when_a_process_died_before_deleting_its_spool(
        database: Database, unreachable: Database, tmp_path: Path, open_log: OpenLog) -> None:
    served = spill(unreachable, tmp_path / "spool", 400)
    already_written = [Prediction(**{column.key: getattr(prediction, column.key)
                                     for column in Prediction.__table__.columns})
                       for prediction in served[100:250]]
    with database.session() as session:  # the replay's commit landed, the delete did not
        session.add_all(already_written)
    with spool_files(tmp_path / "spool")[0].open("a") as torn:
        torn.write('{"id": "torn-by-a-kill", "created_')  # never fsync'd, never acknowledged

    prediction_log = open_log(database, tmp_path / "spool", batch_size=64)
    prediction_log.close(timeout=30)

    assert sorted(logged_ids(database)) == sorted(ids_of(served))
    assert spool_files(tmp_path / "spool") == []
    assert spool_files(tmp_path / "spool", "rejected") == []  # duplicates skipped, not refused


def test_a_live_process_keeps_its_spool_until_it_stops(
        database: Database, unreachable: Database, tmp_path: Path, open_log: OpenLog) -> None:
    down = open_log(unreachable, tmp_path / "spool", retry_seconds=60)
    served = make_predictions(30)
    down.submit(served)
    down.flush(timeout=10)

    up = open_log(database, tmp_path / "spool")
    up.close(timeout=10)
    assert logged_ids(database) == []  # still the other process's to replay

    down.close()
    open_log(database, tmp_path / "spool").close(timeout=10)
    assert sorted(logged_ids(database)) == sorted(ids_of(served))


# A replica that journals predictions it cannot write yet, then is SIGKILLed: the ids it
# served are printed once journaled (what a client would have been answered).
_KILLED_SIBLING = """
import sys, time
from lifeboat.db import Database
from lifeboat.scoring.prediction_log import PredictionLog
from tests.scoring.test_prediction_log import make_predictions
prediction_log = PredictionLog(Database(sys.argv[1]), sys.argv[2], retry_seconds=60)
served = make_predictions(int(sys.argv[3]))
prediction_log.submit(served)
print(*(prediction.id for prediction in served), flush=True)
time.sleep(600)
"""


def test_a_live_sibling_writes_the_journal_of_one_that_was_killed(
        database: Database, unreachable: Database, tmp_path: Path, open_log: OpenLog) -> None:
    """Replicas sharing a home: one killed with SIGKILL while its rows wait in its journal
    (its database was unreachable) has them written by a sibling that keeps running,
    without a restart of its own."""
    sibling = open_log(database, tmp_path / "spool", adopt_seconds=0.2)
    killed = subprocess.Popen(
        [sys.executable, "-c", _KILLED_SIBLING, unreachable.url, str(tmp_path / "spool"), "250"],
        cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        served = killed.stdout.readline().split()
        assert len(served) == 250
        time.sleep(0.5)  # several adoption turns while the owner lives: they must pass it by
        assert logged_ids(database) == []
    finally:
        killed.kill()
        killed.wait()
        killed.stdout.close()
    wait_until(lambda: len(logged_ids(database)) == 250, 20, "the sibling adopts the journal")
    sibling.flush()
    assert sorted(logged_ids(database)) == sorted(served)
    wait_until(lambda: spool_files(tmp_path / "spool") == [], 10, "the journal is deleted")


def test_a_row_the_database_refuses_does_not_hold_back_the_others(
        database: Database, tmp_path: Path, open_log: OpenLog) -> None:
    good = make_predictions(20)
    bad = make_predictions(1, probability=None)  # NOT NULL: refused on every attempt
    prediction_log = open_log(database, tmp_path / "spool")

    prediction_log.submit(good[:10] + bad + good[10:])

    assert prediction_log.flush(timeout=10) is True
    assert sorted(logged_ids(database)) == sorted(ids_of(good))
    assert prediction_log.status() == "ok"
    rejected = spool_files(tmp_path / "spool", "rejected")
    assert len(rejected) == 1 and bad[0].id in rejected[0].read_text()


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_postgres_outage_mid_traffic_logs_every_prediction_exactly_once(
        database: Database, tmp_path: Path, open_log: OpenLog) -> None:
    server = make_url(database.url)
    proxy = TcpProxy(server.host, server.port or 5432).start()
    through_proxy = Database(server.set(host="127.0.0.1", port=proxy.port)
                             .render_as_string(hide_password=False))
    prediction_log = open_log(through_proxy, tmp_path / "spool", capacity=2000, batch_size=200,
                              retry_seconds=0.2)
    traffic = Traffic(prediction_log, clients=4)
    spilled_before = spilled_total()
    try:
        traffic.start()
        wait_until(lambda: len(logged_ids(database)) > 200, 20, "rows are written")
        proxy.cut()
        wait_until(lambda: prediction_log.status().startswith("degraded"), 20,
                   "the log notices the outage")
        served_before_cut = traffic.count()
        wait_until(lambda: traffic.count() > served_before_cut + 500, 20,
                   "traffic goes on during the outage")
        proxy.restore()
        wait_until(lambda: prediction_log.status() == "ok", 30, "the spool is replayed")
        served_after_restore = traffic.count()
        wait_until(lambda: traffic.count() > served_after_restore + 200, 20,
                   "traffic goes on after the outage")
    finally:
        traffic.stop()
        prediction_log.close(timeout=30)
        proxy.close()
        through_proxy.dispose()

    logged = logged_ids(database)
    assert len(traffic.ids) == len(set(traffic.ids)) > 1000
    assert len(logged) == len(traffic.ids)
    assert set(logged) == set(traffic.ids)
    assert spilled_total() > spilled_before
    assert spool_files(tmp_path / "spool") == []
    assert proxy.connections >= 2  # the writer reconnected after the cut
    assert traffic.slowest_submit < 1.0, "a request waited on the database"


class Traffic:
    """Clients submitting a few predictions at a time, as requests would, until stopped."""

    def __init__(self, prediction_log: PredictionLog, clients: int) -> None:
        self._log = prediction_log
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._client) for _ in range(clients)]
        self.ids: list[str] = []
        self.slowest_submit = 0.0

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def count(self) -> int:
        with self._lock:
            return len(self.ids)

    def _client(self) -> None:
        while not self._stop.is_set():
            served = make_predictions(3)
            started = time.perf_counter()
            self._log.submit(served)
            took = time.perf_counter() - started
            with self._lock:
                self.ids.extend(ids_of(served))
                self.slowest_submit = max(self.slowest_submit, took)
            time.sleep(0.01)


def test_with_the_journal_off_only_what_the_database_cannot_take_goes_to_disk(
        database: Database, unreachable: Database, tmp_path: Path, open_log: OpenLog) -> None:
    up = open_log(database, tmp_path / "up", journal=False)
    written = make_predictions(5)
    up.submit(written)
    assert up.flush(timeout=5) is True
    assert spool_files(tmp_path / "up") == []  # journaled, the open file would be there

    down = PredictionLog(unreachable, tmp_path / "down", journal=False, retry_seconds=60)
    spilled = make_predictions(30)
    down.submit(spilled)
    down.close()
    assert len(spool_files(tmp_path / "down")) == 1
    open_log(database, tmp_path / "down").close(timeout=20)
    assert sorted(logged_ids(database)) == sorted(ids_of(written + spilled))


def test_a_value_beyond_the_fast_encoder_is_journaled_and_replayed(
        database: Database, unreachable: Database, tmp_path: Path, open_log: OpenLog) -> None:
    """orjson refuses integers beyond 64 bits; the line falls back to the json module."""
    down = PredictionLog(unreachable, tmp_path / "spool", retry_seconds=60)
    served = make_predictions(2, input={"age": 10 ** 30, "name": NAME})
    down.submit(served)
    down.close()
    open_log(database, tmp_path / "spool").close(timeout=20)
    with database.session() as session:
        assert session.get(Prediction, served[1].id).input == {"age": 10 ** 30, "name": NAME}
