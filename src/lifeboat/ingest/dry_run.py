"""A dry run of ingestion: what would be accepted and rejected, and why, touching nothing."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import pandas as pd

from lifeboat.datasets import DatasetSpec
from lifeboat.files import open_source
from lifeboat.ingest.reader import read_chunks
from lifeboat.validation import FileRejected, malformed_issues, validate_chunk

EXAMPLES_PER_ISSUE = 3


@dataclass
class FileCheck:
    source: str
    rows_total: int = 0
    rows_valid: int = 0
    rows_invalid: int = 0
    issues: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[dict]] = field(default_factory=dict)
    rejected: str | None = None


def check_file(spec: DatasetSpec, source: str) -> FileCheck:
    """Checked against the table the file would feed (`DatasetSpec.source_for`)."""
    result = FileCheck(source)
    table = spec.source_for(source)
    try:
        chunks = read_chunks(lambda: open_source(source), table)
        seen: set[str] = set()
        for chunk in chunks.chunks:
            validated = validate_chunk(chunk, table, seen)
            result.rows_total += len(chunk)
            result.rows_valid += len(validated.good)
            _collect(result, validated.issues)
    except FileRejected as rejected:
        result.rejected = rejected.reason
        return result
    _collect(result, malformed_issues(*chunks.malformed_rows()))
    result.rows_total += len(chunks.malformed)
    result.rows_invalid = result.rows_total - result.rows_valid
    return result


def _collect(result: FileCheck, issues: pd.DataFrame) -> None:
    for issue, group in issues.groupby("issue"):
        result.issues[str(issue)] += len(group)
        examples = result.examples.setdefault(str(issue), [])
        room = EXAMPLES_PER_ISSUE - len(examples)
        if room > 0:
            examples.extend(group.head(room).astype(object).where(group.notna(), None)
                            .to_dict("records"))
