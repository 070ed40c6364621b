"""The landing zone: raw/ holds files waiting, good/ the rows loaded, bad/ what was rejected.

It is an fsspec URL (a local folder by default, or s3://, gs://), so the same code runs on a
laptop and against a bucket. A reader never sees half a file (`lifeboat.files.write_whole`): a
local file is written under a temporary name and renamed; an object store publishes an object
only once its upload completes.
"""

from __future__ import annotations

import posixpath
import tempfile
from dataclasses import dataclass
from pathlib import Path

import fsspec
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
from fsspec.core import url_to_fs
from fsspec.implementations.local import LocalFileSystem

from lifeboat.files import write_whole
from lifeboat.ingest.sources import expand_source

RAW, GOOD, BAD = "raw", "good", "bad"


@dataclass(frozen=True)
class LandingZone:
    url: str

    @property
    def fs(self) -> fsspec.AbstractFileSystem:
        return url_to_fs(self.url)[0]

    @property
    def root(self) -> str:
        return url_to_fs(self.url)[1].rstrip("/")

    def path(self, folder: str, name: str = "") -> str:
        return posixpath.join(self.root, folder, name) if name else posixpath.join(self.root, folder)

    def waiting(self) -> list[str]:
        """Files dropped into raw/, in name order, as URLs ingestion can open."""
        raw = self.path(RAW)
        if not self.fs.exists(raw):
            return []
        return expand_source(self.url_of(raw))

    def url_of(self, path: str) -> str:
        """A path of this zone as a URL any reader opens (a local path stays a path)."""
        fs = self.fs
        return path if isinstance(fs, LocalFileSystem) else fs.unstrip_protocol(path)

    def remove(self, url: str) -> None:
        """Done with a raw file: its rows are in good/ and the DB, its rejects in bad/."""
        self.fs.rm(url_to_fs(url)[1])

    def write_bytes(self, folder: str, name: str, content: bytes) -> str:
        """Published whole (`write_whole`): no reader of the zone sees half a file."""
        target = self.path(folder, name)
        with write_whole(self.url_of(target)) as stream:
            stream.write(content)
        return target

    def write_rows(self, folder: str, name: str, frame: pd.DataFrame) -> str:
        """CSV for people to open (see `csv_bytes`)."""
        return self.write_bytes(folder, name, csv_bytes(frame))


def csv_bytes(frame: pd.DataFrame) -> bytes:
    """CSV for people to open in a spreadsheet, written as `lifeboat predict` writes its
    output: by Arrow's writer, which quotes every text cell, so a cell holding a line break
    (a bare carriage return included) stays one cell in any reader instead of starting a
    row of its own; cells a spreadsheet would run as formulas are defused. pandas' writer
    quotes a cell only for the line terminator it writes, which a lone carriage return is
    not."""
    defused = defuse_formulas(frame)
    texts = {name: defused[name].astype("string") for name in defused.columns
             if defused[name].dtype == object}  # mixed values (a bad row's) as their text
    sink = pa.BufferOutputStream()
    pa_csv.write_csv(pa.Table.from_pandas(defused.assign(**texts), preserve_index=False), sink)
    return sink.getvalue().to_pybytes()


def defuse_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """Prefix text cells starting with = + - @ with a quote, as OWASP advises for CSV exports."""
    defused = frame.copy()
    for name in defused.columns:
        if defused[name].dtype == object or pd.api.types.is_string_dtype(defused[name]):
            text = defused[name]
            risky = text.astype(str).str.match(r"^[=+\-@\t\r]") & text.notna()
            defused[name] = text.where(~risky, "'" + text.astype(str))
    return defused


class SpooledRows:
    """Good rows spooled to a local Parquet file while a load runs, published after the commit.

    Memory stays bounded by one chunk however large the file.
    """

    def __init__(self) -> None:
        self._directory = tempfile.TemporaryDirectory(prefix="lifeboat-")
        self._path = Path(self._directory.name) / "rows.parquet"
        self._writer: pq.ParquetWriter | None = None

    def add(self, frame: pd.DataFrame) -> None:
        if frame.empty:
            return
        table = pa.Table.from_pandas(frame, preserve_index=False)
        if self._writer is None:
            self._writer = pq.ParquetWriter(self._path, table.schema)
        self._writer.write_table(table.cast(self._writer.schema))

    def publish(self, zone: LandingZone, folder: str, name: str) -> str | None:
        """The file written, or None when no row was good."""
        target = None
        if self._writer is not None:
            self._writer.close()
            target = zone.write_bytes(folder, name, self._path.read_bytes())
        self.discard()
        return target

    def discard(self) -> None:
        self._directory.cleanup()
