"""What `lifeboat ingest SOURCE` may be given: a file, a folder, or a URL of either."""

from __future__ import annotations

import posixpath

from fsspec.core import url_to_fs
from fsspec.implementations.local import LocalFileSystem

from lifeboat.errors import IngestError


def expand_source(source: str) -> list[str]:
    """The files a source names, as URLs fsspec can open; hidden files are left alone."""
    try:
        fs, path = url_to_fs(source)
        if not fs.isdir(path):
            if not fs.exists(path):
                raise IngestError(f"cannot read {source}: no such file or folder")
            return [source]
        found = sorted(p for p in fs.find(path) if not posixpath.basename(p).startswith("."))
    except (OSError, ValueError) as exc:
        raise IngestError(f"cannot read {source}: {exc}") from exc
    if isinstance(fs, LocalFileSystem):
        return found
    return [fs.unstrip_protocol(p) for p in found]
