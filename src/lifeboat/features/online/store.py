"""The online store's interface, and the bytes every backend holds.

Each backend (one Redis server, a Redis Cluster, an embedded SQLite file) holds the same bytes
per entity: its values as a compact JSON array in the view version's column order, and a
separate record of that column list, written after the vectors, so a version's columns appear
only once its vectors are in place.

Why stdlib JSON: it keeps floats, ints, strings and nulls apart, and every language reads it.
Measured on the 2-core development machine, decoding 100 vectors of 22 values costs about
0.45 ms when they are joined into one `json.loads` call (0.7 ms one call per vector), inside
the 2 ms target for a 100-entity lookup; `benchmarks/feature_store.py` measures it end to end.

A read is a round trip or a handful whatever the number of ids (one MGET on a Redis server,
one pipeline per master of a cluster, one SQLite query), and its results are decoded in a
single `json.loads`. A frame's vectors (`write_frame`) are packed column by column, each
distinct value encoded once, into the very bytes `write` makes of its rows: 1M vectors of the
shipped view took 1.9 s of CPU, against 3.7 s row by row.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice
from json.encoder import encode_basestring_ascii
from typing import TypeVar

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from lifeboat.errors import LifeboatError

T = TypeVar("T")

BATCH_ROWS = 10_000  # rows packed at a time: a Redis pipeline, a SQLite executemany
_BARRED = frozenset(":{}")  # in a view key's parts


class OnlineStoreUnavailable(LifeboatError):
    """The online store cannot be reached; the message names it (password hidden) and why."""


@dataclass(frozen=True)
class ViewKey:
    """One version of one feature view of one dataset.

    No part may hold a colon or a brace: then an entity's key in Redis can never equal the bare
    prefix that records the version's columns, nor a key of another version, and the braces
    of its hash tag are the key's first ones.
    """

    dataset: str
    view: str
    version: str

    def __post_init__(self) -> None:
        for part in (self.dataset, self.view, self.version):
            if not part or not _BARRED.isdisjoint(part):
                raise ValueError("view key parts must be non-empty, without colons or braces, "
                                 f"got {part!r}")

    @property
    def prefix(self) -> str:
        return f"{self.dataset}:{self.view}:{self.version}"


class OnlineStore(ABC):
    """Writes, reads and error handling shared by the backends, which only move bytes.

    A backend stores packed vectors under (prefix, entity id) and one metadata record under
    the prefix; any of its `outages` becomes `OnlineStoreUnavailable`.
    """

    url: str  # for messages; password redacted
    outages: tuple[type[Exception], ...]

    def __init__(self, url: str, ttl_seconds: int | None) -> None:
        self.url = url
        self.ttl_seconds = ttl_seconds

    def write(self, key: ViewKey, columns: Sequence[str], entity_ids: Sequence[str],
              rows: Iterable[Sequence[object]]) -> int:
        """Upserts one vector per entity, in batches (bounded memory); returns rows written.

        Values are float, int, str or None; NaN becomes None. A version's column list is
        fixed: writing other columns under an existing version is a ValueError.
        """
        columns = list(columns)
        return self._write_packed(key, columns, entity_ids,
                                  (_pack(row, len(columns)) for row in rows))

    def write_frame(self, key: ViewKey, entity_ids: Sequence[str], frame: pd.DataFrame) -> int:
        """`write` of the frame's rows under its column names, packed column by column."""
        return self._write_packed(key, list(frame.columns), entity_ids, pack_frame(frame))

    def _write_packed(self, key: ViewKey, columns: list[str], entity_ids: Sequence[str],
                      vectors: Iterable[bytes]) -> int:
        held = self.columns(key)
        if held is not None and held != columns:
            raise ValueError(f"{key.prefix} holds columns {held}; new columns need a new version")
        written = 0
        with self._reachable(), self._transaction():
            ids = iter(entity_ids)
            for batch in _batches(vectors, BATCH_ROWS):
                self._write_vectors(key, _exactly(ids, len(batch)), batch)
                written += len(batch)
            _exactly(ids, 0)
            self._write_meta(key, _ENCODER.encode(
                {"columns": columns, "updated_at": datetime.now(UTC).isoformat()}).encode())
        return written

    def read(self, key: ViewKey, entity_ids: Sequence[str]) -> list[list[object] | None]:
        """One vector per id, in order; None where the store holds none (or it expired)."""
        if len(entity_ids) == 0:
            return []
        with self._reachable():
            packed = self._read_vectors(key, entity_ids)
        present = [vector for vector in packed if vector is not None]
        decoded = iter(json.loads(b"[" + b",".join(present) + b"]"))
        return [None if vector is None else next(decoded) for vector in packed]

    def columns(self, key: ViewKey) -> list[str] | None:
        """The column list of that view version, or None if the store holds no such version."""
        with self._reachable():
            meta = self._read_meta(key)
        return None if meta is None else json.loads(meta)["columns"]

    def claim(self, name: str, seconds: int) -> bool:
        """True for one caller at a time, across processes, for at most `seconds`: so that
        of several workers noticing the same empty store, one refills it."""
        with self._reachable():
            return self._claim(name, seconds)

    def ping(self) -> None:
        """Returns when the store answers; raises OnlineStoreUnavailable when it does not."""
        with self._reachable():
            self._ping()

    @abstractmethod
    def close(self) -> None: ...

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """Around a whole write: nothing here; one transaction in the SQLite store."""
        yield

    @contextmanager
    def _reachable(self) -> Iterator[None]:
        try:
            yield
        except self.outages as exc:
            raise OnlineStoreUnavailable(f"online store {self.url} is unreachable: {exc}") from exc

    @abstractmethod
    def _write_vectors(self, key: ViewKey, entity_ids: list[str], vectors: list[bytes]) -> None: ...

    @abstractmethod
    def _write_meta(self, key: ViewKey, meta: bytes) -> None: ...

    @abstractmethod
    def _read_vectors(self, key: ViewKey, entity_ids: Sequence[str]) -> list[bytes | None]: ...

    @abstractmethod
    def _read_meta(self, key: ViewKey) -> bytes | None: ...

    @abstractmethod
    def _ping(self) -> None: ...

    @abstractmethod
    def _claim(self, name: str, seconds: int) -> bool: ...


def _pack(row: Sequence[object], width: int) -> bytes:
    values = [None if value != value else value for value in row]  # NaN: unequal to itself
    if len(values) != width:
        raise ValueError(f"a row has {len(values)} values for {width} columns")
    return _ENCODER.encode(values).encode()


def pack_frame(frame: pd.DataFrame) -> list[bytes]:
    """Each row as `_pack` packs it: a column's distinct values are encoded once, then the
    rows' pieces are gathered and joined by Arrow, with no Python work per value."""
    if frame.shape[1] == 0:
        return [b"[]"] * len(frame)
    pieces = [_encoded(frame.iloc[:, position]) for position in range(frame.shape[1])]
    pieces[0] = pc.binary_join_element_wise("[", pieces[0], "")
    pieces[-1] = pc.binary_join_element_wise(pieces[-1], "]", "")
    return pc.binary_join_element_wise(*pieces, ",").cast(pa.binary()).to_pylist()


def _encoded(column: pd.Series) -> pa.Array:
    """Each value of the column as JSON text, as `_ENCODER` writes it, NaN and None as null."""
    values = column.to_numpy()
    if values.dtype == np.float64:
        # By bit pattern: 0.0 equals -0.0, but they are written apart.
        codes, distinct = pd.factorize(values.view(np.int64))
        numbers = distinct.view(np.float64)
        texts = list(map(float.__repr__, numbers.tolist()))
        for position in np.flatnonzero(~np.isfinite(numbers)):
            number = float(numbers[position])
            texts[position] = _ENCODER.encode(None if number != number else number)
    elif pd.api.types.infer_dtype(values, skipna=True) in ("string", "empty"):
        codes, distinct = pd.factorize(values)  # NaN and None: code -1
        texts = list(map(encode_basestring_ascii, distinct.tolist()))
    else:
        codes = np.arange(len(values))
        texts = [_ENCODER.encode(None if value != value else value)
                 for value in column.astype(object).tolist()]
    texts.append("null")
    return pa.array(texts, pa.string()).take(np.where(codes < 0, len(texts) - 1, codes))


def _plain(value: object) -> object:
    """NumPy scalars (an int64 from a DataFrame) as the Python value they hold."""
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not a feature value (float, int, str or None)")


_ENCODER = json.JSONEncoder(separators=(",", ":"), default=_plain)


def _exactly(items: Iterator[T], count: int) -> list[T]:
    """The next `count` items; a ValueError if fewer are left, or more when `count` is 0."""
    taken = list(islice(items, count or 1))
    if len(taken) != count:
        raise ValueError(f"{'more' if count == 0 else 'fewer'} entity ids than vectors")
    return taken


def _batches(items: Iterable[T], size: int) -> Iterator[list[T]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def redact(url: str) -> str:
    """The URL with its password, if any, replaced by ***."""
    scheme, separator, rest = url.partition("://")
    userinfo, at, location = rest.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    return f"{scheme}{separator}{userinfo.partition(':')[0]}:***@{location}"
