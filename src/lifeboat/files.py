"""File helpers every stage shares, for local paths and fsspec URLs alike (s3://, gs://,
http://): opening a file to read, its checksum, telling Parquet and gzip by their first
bytes, and writing a file so that no reader ever sees part of it.

Ingestion names a run by its file's checksum and batch scoring derives prediction ids from
it, so both must compute it the same way; the landing zone and batch scoring's output are
published the same way, whole or not at all. Written here once, below every stage.
"""

from __future__ import annotations

import hashlib
import posixpath
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import BinaryIO

import fsspec
from fsspec.core import url_to_fs
from fsspec.implementations.local import LocalFileSystem

from lifeboat.errors import IngestError

# Enough of a file's first bytes for `is_gzip` and `is_parquet` to tell its format.
SIGNATURE_BYTES = 4
_GZIP_MAGIC = b"\x1f\x8b"
_PARQUET_MAGIC = b"PAR1"
_BLOCK_BYTES = 1 << 20


def open_source(url: str) -> BinaryIO:
    """A binary stream of one file; a missing or unreachable one is a clear IngestError."""
    try:
        return fsspec.open(url, "rb").open()
    except (OSError, ValueError) as exc:
        raise IngestError(f"cannot read {url}: {getattr(exc, 'strerror', None) or exc}") from exc


def content_checksum(url: str, each_block: Callable[[bytes], object] = lambda _block: None) -> str:
    """The file's SHA-256 (hex), read a block at a time so that any size fits in memory.
    `each_block` sees every block as it goes by, for a caller that needs something else
    from the whole file (batch scoring counts its lines) without reading it twice."""
    digest = hashlib.sha256()
    with open_source(url) as stream:
        while block := stream.read(_BLOCK_BYTES):
            digest.update(block)
            each_block(block)
    return digest.hexdigest()


def is_gzip(head: bytes) -> bool:
    """Whether a file starting with `head` is gzip-compressed, whatever its name says."""
    return head.startswith(_GZIP_MAGIC)


def is_parquet(head: bytes) -> bool:
    """Whether a file starting with `head` is Parquet, whatever its name says."""
    return head.startswith(_PARQUET_MAGIC)


def write_whole(url: str, compression: str | None = None) -> AbstractContextManager[BinaryIO]:
    """A stream to write the file at `url` through, within `with`, such that a reader finds
    the whole file or none of it. The file is opened at once: an OSError here means it
    cannot be written at all, before anything was produced for it.

    A local file is written beside its target under a hidden temporary name, renamed over
    the target once the `with` block ends, and removed if the block fails. An object store
    publishes an upload only once it completes, so there the target itself is written: a
    move would be a copy plus a delete (gcsfs first retries its moveTo API for half a minute
    where it is missing), and creating the folder would create the bucket when it cannot be
    seen, which fails with credentials scoped to a prefix and makes a mistyped bucket instead
    of an error."""
    fs, path = url_to_fs(url)
    local = isinstance(fs, LocalFileSystem)
    folder, name = posixpath.split(path)
    writing = posixpath.join(folder, f".{name}.partial") if local else path
    if local:
        fs.makedirs(folder, exist_ok=True)
    stream = fsspec.open(fs.unstrip_protocol(writing), "wb", compression=compression).open()
    return _published(stream, fs, writing, path)


@contextmanager
def _published(stream: BinaryIO, fs: fsspec.AbstractFileSystem, writing: str,
               path: str) -> Iterator[BinaryIO]:
    try:
        with stream:
            yield stream
    except BaseException:
        if writing != path:
            fs.rm(writing)
        raise
    if writing != path:
        fs.mv(writing, path)
