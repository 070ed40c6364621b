"""Ingestion: land a source file in the dataset's table, exactly once."""

from lifeboat.ingest.loader import IngestReport, ingest_file, row_count

__all__ = ["IngestReport", "ingest_file", "row_count"]
