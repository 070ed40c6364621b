"""The vocabulary of data problems, shared by validation, the issues table and the generator."""

from __future__ import annotations

from enum import StrEnum


class RowIssue(StrEnum):
    """Why a row was rejected. One row may have several, one per bad cell."""

    WRONG_TYPE = "wrong_type"
    OUT_OF_RANGE = "out_of_range"
    NOT_ALLOWED = "not_allowed"
    MISSING_REQUIRED = "missing_required"
    TOO_LONG = "too_long"                  # a string past its column's max_length
    DUPLICATE_KEY = "duplicate_key"        # the key came earlier in the same file
    ALREADY_LOADED = "already_loaded"      # the key is in the database from an earlier file
    MALFORMED_ROW = "malformed_row"


class FileRejected(Exception):
    """The whole file is unusable (empty, not text, a required column missing, ...).

    Carries one reason a person can act on; the file is quarantined with it.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
