"""Exceptions that reach the edges (CLI, HTTP) with a message a user can act on."""


class LifeboatError(Exception):
    """Base class: the CLI prints the message on one line and exits non-zero."""


class DatasetSpecError(LifeboatError):
    """A dataset spec file is missing or does not describe a usable dataset."""


class IngestError(LifeboatError):
    """A source could not be read or loaded."""


class NoChampionError(LifeboatError):
    """Serving or comparison needs a champion model and the registry has none."""


class ModelVersionNotFound(LifeboatError):
    """A model version named by the user is not in the registry."""


class JobFailed(LifeboatError):
    """A job (ingest, score, drift, pipeline) failed; its run row holds the same error."""


class EngineUnavailable(LifeboatError):
    """The engine a job was asked to run on cannot start (PySpark or Java missing, no master)."""
