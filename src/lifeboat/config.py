"""The one settings object: environment variables and `.env`, each with a working default."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import unquote, urlsplit

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from lifeboat.errors import LifeboatError

HOME_NAME = ".lifeboat"


def sqlite_file(url: str) -> Path | None:
    """The file a `sqlite:///relative` or `sqlite:////absolute` URL names (the embedded
    stores' form); None for any other URL."""
    parts = urlsplit(url)
    path = unquote(parts.path)[1:]
    if parts.scheme != "sqlite" or parts.netloc or path in ("", ":memory:"):
        return None
    return Path(path)


def found_home(start: Path | None = None) -> Path | None:
    """The nearest `.lifeboat` folder in `start` (default: the current folder) or a folder
    above it, as git finds `.git`: a command run anywhere inside a project uses its home."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / HOME_NAME).is_dir():
            return folder / HOME_NAME
    return None


class Settings(BaseSettings):
    """Every setting Lifeboat reads. `.env.example` documents each one."""

    model_config = SettingsConfigDict(
        env_prefix="LIFEBOAT_", env_file=".env", extra="ignore", populate_by_name=True
    )

    home: Path = Field(
        default_factory=lambda: found_home() or Path(HOME_NAME),
        description="Embedded state lives here; default: the nearest .lifeboat folder in the "
                    "current folder or one above it, else .lifeboat here.")
    dataset: str = Field(default="titanic", description="Dataset spec served and trained.")
    datasets: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="More datasets one service serves, each under /datasets/{name}/: spec "
                    "names or spec file paths, comma-separated. `dataset` stays the default "
                    "(the unprefixed routes) and is always served; default: it alone.",
    )
    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("DATABASE_URL", "LIFEBOAT_DATABASE_URL"),
        description="SQLAlchemy URL; default: SQLite file under home.",
    )
    mlflow_tracking_uri: str | None = Field(
        default=None,
        validation_alias=AliasChoices("MLFLOW_TRACKING_URI", "LIFEBOAT_MLFLOW_TRACKING_URI"),
        description="MLflow tracking + registry; default: SQLite store under home.",
    )
    mlflow_ui_url: str | None = Field(
        default=None,
        description="The MLflow UI as a browser reaches it, for the Models tab's links to "
                    "each version's run; default: the tracking URI when it is http(s), "
                    "else no links.",
    )
    storage_url: str | None = Field(
        default=None,
        description="Landing zone (raw/, good/, bad/) as an fsspec URL; default: folder under home.",
    )
    redis_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("REDIS_URL", "LIFEBOAT_REDIS_URL"),
        description="Online feature store on Redis; default: embedded SQLite store under home.",
    )
    online_ttl_seconds: int | None = Field(
        default=None,
        ge=1,
        description="Online feature vectors expire this long after they are written; default: never.",
    )
    admin_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="Bearer keys (comma-separated) for the admin routes (promote, rollback, "
                    "retrain); an admin key also opens every other scope. None: admin routes "
                    "are refused (403).",
    )
    read_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="Bearer keys (comma-separated) for reading past predictions, models, jobs, "
                    "drift and monitoring. None: open to anyone (a warning at start).",
    )
    feedback_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="Bearer keys (comma-separated) for POST /feedback. None: open to anyone "
                    "(a warning at start).",
    )
    predict_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="Bearer keys (comma-separated) for the scoring routes (/predict, "
                    "/predict/csv). None: open to anyone (a warning at start).",
    )
    api_key: SecretStr | None = Field(
        default=None,
        description="One more admin key: the setting before LIFEBOAT_ADMIN_KEYS, still honoured.",
    )
    max_request_bytes: int = Field(
        default=10 * 1024 * 1024, ge=1024,
        description="Larger request bodies get a 413 before they are read.",
    )
    model_poll_seconds: float = Field(
        default=5.0, gt=0,
        description="How often the service checks the registry for a new champion to load.",
    )
    prediction_log_capacity: int = Field(
        default=10_000, ge=100,
        description="Predictions held in memory on their way to the DB; beyond, they spill to disk.",
    )
    prediction_log_drain_seconds: float = Field(
        default=10.0, ge=0,
        description="How long a shutdown waits to write queued predictions; the rest stay spilled.",
    )
    journal: bool = Field(
        default=True,
        description="Append each served prediction to a journal on disk before it is "
                    "answered, so that a killed process loses none; off, only what the "
                    "database cannot take goes to disk, and a kill loses what was queued.",
    )
    journal_fsync: bool = Field(
        default=False,
        description="Force each served prediction to disk before it is answered: survives "
                    "the machine crashing, not just the process (which the journal always "
                    "survives), at the cost of a disk flush per request.",
    )
    online_check_seconds: float = Field(
        default=15.0, gt=0,
        description="How often the service checks that the online store holds its feature "
                    "view, and refills it from the offline store when it does not (Redis "
                    "restarted or flushed).",
    )
    drift_window_size: int = Field(
        default=200, ge=30,
        description="Recent predictions a drift check tests against the training reference.",
    )
    drift_check_seconds: float = Field(
        default=300.0, gt=0,
        description="How often the scheduler (`lifeboat up`'s jobs process, `lifeboat "
                    "schedule`) runs a turn of the monitoring loop: outcomes derived, a drift "
                    "check over the latest window, the retrain policy.",
    )
    drift_p_value: float = Field(
        default=0.05, gt=0, lt=1,
        description="Significance of a drift check, after multiple-testing correction.",
    )
    drift_correction: Literal["bonferroni", "fdr"] = Field(
        default="bonferroni",
        description="Multiple-testing correction across features: Bonferroni, or FDR "
                    "(Benjamini-Hochberg).",
    )
    live_accuracy_window: int = Field(
        default=200, ge=10,
        description="Recent labelled predictions (feedback) live accuracy is measured on.",
    )
    min_feedback_samples: int = Field(
        default=50, ge=1,
        description="Labelled predictions needed before an accuracy drop may trigger a retrain.",
    )
    accuracy_drop_threshold: float = Field(
        default=0.1, gt=0, lt=1,
        description="Held-out minus live accuracy beyond which a retrain is triggered.",
    )
    auto_retrain: bool = Field(
        default=True,
        description="Retrain when drift or an accuracy drop is found (gated: promoted only "
                    "if better).",
    )
    min_improvement: float | None = Field(
        default=None, ge=0,
        description="How much a challenger must beat the champion by on the primary metric "
                    "to be promoted (its bootstrap interval must also exclude zero); default: "
                    "the spec's training.min_improvement.",
    )
    feedback_weight: int = Field(
        default=3, ge=1,
        description="How many historical rows one labelled prediction counts as, in training "
                    "and in the promotion gate: today's outcomes outweigh the original file.",
    )
    retrain_cooldown_seconds: float = Field(
        default=3600.0, ge=0,
        description="Minimum time between two automatic retrains.",
    )
    ingest_every_seconds: float = Field(
        default=60.0, gt=0,
        description="How often the scheduler ingests the files waiting in the landing zone's raw/.",
    )
    score_every_seconds: float = Field(
        default=120.0, gt=0,
        description="How often the scheduler scores good/ files not scored yet (source "
                    "`scheduled`).",
    )
    watch_poll_seconds: float = Field(
        default=10.0, gt=0,
        description="How often the watcher lists an object-storage landing zone (a local one "
                    "sends filesystem events instead).",
    )
    embedded_jobs: bool = Field(
        default=True,
        description="Run the scheduler and the watcher inside `lifeboat up` (turn off when "
                    "Airflow runs the jobs).",
    )
    engine: Literal["local", "spark"] = Field(
        default="local",
        description="Where the heavy jobs run (batch scoring, materialization, ingestion): "
                    "in this process, or on Spark for data that outgrows one machine.",
    )
    spark_master: str = Field(
        default="local[*]",
        description="The Spark master the spark engine connects to: local[*] (this machine), "
                    "spark://host:7077 (a standalone cluster), yarn, or k8s://https://host.",
    )
    workers: int = Field(
        default=1, ge=1,
        description="Serving processes; with more than one, /metrics adds up all of them.",
    )
    host: str = "127.0.0.1"
    port: int = 8000
    jobs_metrics_port: int = Field(
        default=9100, ge=1, le=65535,
        description="Where the jobs process (`lifeboat schedule`, and `lifeboat up`'s embedded "
                    "jobs) serves its Prometheus metrics, at /metrics.",
    )
    jobs_metrics_host: str | None = Field(
        default=None,
        description="The address the jobs' metrics listen on; default: `host`.",
    )
    log_level: str = "INFO"
    search_iterations: int | None = Field(
        default=None,
        ge=1,
        description="Overrides the spec's random-search budget (fewer = faster, rougher).",
    )

    @field_validator("datasets", "admin_keys", "read_keys", "feedback_keys", "predict_keys",
                     mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        """`LIFEBOAT_DATASETS=titanic,customers` as a list, and so are keys (several, so one
        can be rotated at a time); blanks are left out."""
        if isinstance(value, str):
            return [name.strip() for name in value.split(",") if name.strip()]
        return value

    def keys_for(self, scope: str) -> tuple[bytes, ...]:
        """The keys that open `scope` (admin, read, feedback or predict): its own and every
        admin key. None when the scope has no key of its own: then it is open, or for admin,
        shut."""
        admin = [*self.admin_keys, *([self.api_key] if self.api_key else [])]
        own = {"admin": admin, "read": self.read_keys, "feedback": self.feedback_keys,
               "predict": self.predict_keys}[scope]
        if not own:
            return ()
        opening = own if scope == "admin" else [*own, *admin]
        return tuple(key.get_secret_value().encode() for key in opening)

    @property
    def resolved_home(self) -> Path:
        return self.home.expanduser().resolve()

    @property
    def jobs_metrics_address(self) -> tuple[str, int]:
        return self.jobs_metrics_host or self.host, self.jobs_metrics_port

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.resolved_home / 'lifeboat.db'}"

    @property
    def tracking_uri(self) -> str:
        return self.mlflow_tracking_uri or f"sqlite:///{self.resolved_home / 'mlflow.db'}"

    @property
    def tracking_ui_url(self) -> str | None:
        if self.mlflow_ui_url:
            return self.mlflow_ui_url
        uri = self.mlflow_tracking_uri or ""
        return uri if uri.startswith(("http://", "https://")) else None

    @property
    def landing_url(self) -> str:
        return self.storage_url or str(self.resolved_home / "landing")

    @property
    def online_store_url(self) -> str:
        return self.redis_url or f"sqlite:///{self.resolved_home / 'online.db'}"

    @property
    def artifact_root(self) -> Path:
        return self.resolved_home / "mlartifacts"

    def existing_home(self) -> Path:
        """The home, which must exist: a read-only command run outside any project used to
        create an empty home, then report that it held nothing."""
        home = self.resolved_home
        if home.is_dir():
            return home
        if "home" in self.model_fields_set:
            raise LifeboatError(f"no Lifeboat home at {home} (--home or LIFEBOAT_HOME): it is "
                                "new; `lifeboat up` or `lifeboat bootstrap` makes one")
        raise LifeboatError(f"no Lifeboat home: no {HOME_NAME} folder in {Path.cwd()} or any "
                            "folder above it; `lifeboat up` makes one here, or give --home or "
                            "LIFEBOAT_HOME")

    def ensure_home(self) -> Path:
        home = self.resolved_home
        home.mkdir(parents=True, exist_ok=True)
        return home
