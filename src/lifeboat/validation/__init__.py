"""Row-level data validation: good rows, bad rows, and the reason for each rejection."""

from lifeboat.validation.column_rules import FILE_NUMBER, ColumnRule, TableRules, table_rules
from lifeboat.validation.issues import FileRejected, RowIssue
from lifeboat.validation.rules import (
    ISSUE_COLUMNS,
    ValidatedChunk,
    derived_entity_ids,
    malformed_issues,
    reject_loaded_keys,
    validate_chunk,
)

__all__ = ["FILE_NUMBER", "ISSUE_COLUMNS", "ColumnRule", "FileRejected", "RowIssue",
           "TableRules", "ValidatedChunk", "derived_entity_ids", "malformed_issues", "reject_loaded_keys",
           "table_rules", "validate_chunk"]
