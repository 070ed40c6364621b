"""Ingestion: land a source file in the table it feeds, exactly once, bad rows set aside.

The file reader and the CSV export guard are public too: batch scoring and CSV uploads
read and write files the same way ingestion does.
"""

from lifeboat.ingest.dry_run import check_file
from lifeboat.ingest.landing import GOOD, RAW, LandingZone, SpooledRows, csv_bytes, defuse_formulas
from lifeboat.ingest.loader import (
    IngestReport,
    Load,
    bad_rows_of,
    finish_run,
    ingest_file,
    row_count,
)
from lifeboat.ingest.reader import (
    CHUNK_ROWS,
    FileChunks,
    FilePart,
    file_parts,
    read_ahead,
    read_chunks,
    read_part,
)
from lifeboat.ingest.sources import expand_source

__all__ = [
    "CHUNK_ROWS",
    "GOOD",
    "RAW",
    "FileChunks",
    "FilePart",
    "IngestReport",
    "LandingZone",
    "Load",
    "SpooledRows",
    "bad_rows_of",
    "check_file",
    "csv_bytes",
    "defuse_formulas",
    "expand_source",
    "file_parts",
    "finish_run",
    "ingest_file",
    "read_ahead",
    "read_chunks",
    "read_part",
    "row_count",
]
