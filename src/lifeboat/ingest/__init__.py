"""Ingestion: land a source file in the dataset's table, exactly once, bad rows set aside."""

from lifeboat.ingest.landing import LandingZone
from lifeboat.ingest.loader import IngestReport, ingest_file, row_count

__all__ = ["IngestReport", "LandingZone", "ingest_file", "row_count"]
