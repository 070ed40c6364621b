"""Row-level data validation: good rows, bad rows, and the reason for each rejection."""

from lifeboat.validation.issues import FileRejected, RowIssue
from lifeboat.validation.rules import (
    ISSUE_COLUMNS,
    ValidatedChunk,
    malformed_issues,
    reject_loaded_keys,
    validate_chunk,
)

__all__ = ["ISSUE_COLUMNS", "FileRejected", "RowIssue", "ValidatedChunk",
           "malformed_issues", "reject_loaded_keys", "validate_chunk"]
