"""The shared file helpers (lifeboat/files.py): a file's checksum is its SHA-256 whatever
reads it, a format is told by its first bytes, and a file written whole is seen whole or
not at all."""

from __future__ import annotations

import gzip
import hashlib
import io
from pathlib import Path

import pandas as pd
import pytest

from lifeboat.errors import IngestError
from lifeboat.files import (
    SIGNATURE_BYTES,
    content_checksum,
    is_gzip,
    is_parquet,
    open_source,
    write_whole,
)


def test_the_checksum_is_the_sha256_of_every_byte_and_each_block_is_seen(tmp_path: Path) -> None:
    content = bytes(range(256)) * 20_000  # several read blocks
    path = tmp_path / "rows.bin"
    path.write_bytes(content)
    seen: list[bytes] = []
    assert content_checksum(str(path), seen.append) == hashlib.sha256(content).hexdigest()
    assert len(seen) > 1 and b"".join(seen) == content
    assert content_checksum(f"file://{path}") == hashlib.sha256(content).hexdigest()


def test_a_missing_file_is_a_clear_ingest_error(tmp_path: Path) -> None:
    with pytest.raises(IngestError, match="cannot read"):
        open_source(str(tmp_path / "absent.csv"))


def test_formats_are_told_by_their_first_bytes(tmp_path: Path) -> None:
    parquet = io.BytesIO()
    pd.DataFrame({"a": [1]}).to_parquet(parquet)
    assert is_parquet(parquet.getvalue()[:SIGNATURE_BYTES])
    assert is_gzip(gzip.compress(b"a,b\n1,2\n")[:SIGNATURE_BYTES])
    for text in (b"a,b\n", b"PA", b""):
        assert not is_parquet(text) and not is_gzip(text)


def test_a_file_written_whole_appears_only_once_complete(tmp_path: Path) -> None:
    target = tmp_path / "out" / "scores.csv"
    with write_whole(str(target)) as stream:
        stream.write(b"row\n")
        assert not target.exists()
        assert [p.name for p in target.parent.iterdir()] == [".scores.csv.partial"]
    assert target.read_bytes() == b"row\n"
    assert [p.name for p in target.parent.iterdir()] == ["scores.csv"]


def test_a_failed_write_leaves_neither_the_file_nor_its_temporary(tmp_path: Path) -> None:
    target = tmp_path / "scores.csv"
    with pytest.raises(RuntimeError), write_whole(str(target)) as stream:
        stream.write(b"half a file")
        raise RuntimeError("the writer failed")
    assert list(tmp_path.iterdir()) == []


def test_a_file_written_whole_may_be_compressed(tmp_path: Path) -> None:
    target = tmp_path / "scores.csv.gz"
    with write_whole(str(target), "gzip") as stream:
        stream.write(b"row\n")
    assert gzip.decompress(target.read_bytes()) == b"row\n"


def test_a_file_that_cannot_be_written_fails_before_anything_is_produced(tmp_path: Path) -> None:
    (tmp_path / "taken").write_bytes(b"a file, not a folder")
    with pytest.raises(OSError):
        write_whole(str(tmp_path / "taken" / "scores.csv"))
