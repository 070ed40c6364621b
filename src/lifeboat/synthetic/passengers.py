"""Synthetic Titanic passengers: as many realistic, seeded rows as a benchmark or test needs.

Rows are bootstrapped from the real passenger list one travel party at a time (passengers
linked by a ticket, or by surname and fare), so families and companions stay together:
both kinds of travel group are features, and a generator that scattered them would drift
from the real data before any `Shift`. Each drawn party gets ticket numbers no other party
has and one consistent change of surnames and given names, which makes (name, ticket), the
entity key's source, unique.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd

from lifeboat.datasets import DatasetSpec, load_spec
from lifeboat.errors import DatasetSpecError
from lifeboat.validation import RowIssue

TITANIC3_COLUMNS = (
    "pclass", "survived", "name", "sex", "age", "sibsp", "parch", "ticket", "fare",
    "cabin", "embarked", "boat", "body", "home.dest",
)
# Above every real ticket number (the highest is 3101317): a synthetic passenger never joins
# a real travel group when scored by a model trained on the real list.
_FIRST_TICKET_NUMBER = 4_000_000
_FARE_SPREAD = 0.05  # log-scale: a party's fares move by about 5%


@dataclass(frozen=True)
class Shift:
    """A change in who is aboard, for drift tests; the defaults change nothing."""

    age_offset: float = 0.0
    fare_factor: float = 1.0
    class_mix: tuple[float, float, float] | None = None
    female_share: float | None = None
    fare_offset: float = 0.0  # added after fare_factor; a fare never drops below 0

    def __post_init__(self) -> None:
        if self.fare_factor < 0:
            raise ValueError("fare_factor must be >= 0: fares cannot turn negative")
        if self.class_mix is not None and (
            len(self.class_mix) != 3 or min(self.class_mix) < 0
            or not np.isclose(sum(self.class_mix), 1.0)
        ):
            raise ValueError("class_mix needs three probabilities for pclass 1, 2, 3 summing to 1")
        if self.female_share is not None and not 0 <= self.female_share <= 1:
            raise ValueError("female_share must be between 0 and 1")


FORMULA_INJECTION = "formula_injection"  # a valid name, dangerous only when exported


_CELL_ERRORS = pd.DataFrame(
    [
        (RowIssue.WRONG_TYPE, "age", "old"),
        (RowIssue.WRONG_TYPE, "fare", "abc"),
        (RowIssue.WRONG_TYPE, "sibsp", "two"),
        (RowIssue.WRONG_TYPE, "pclass", "first"),
        (RowIssue.OUT_OF_RANGE, "age", "150"),
        (RowIssue.OUT_OF_RANGE, "age", "-1"),
        (RowIssue.OUT_OF_RANGE, "fare", "-5"),
        (RowIssue.OUT_OF_RANGE, "sibsp", "-1"),
        (RowIssue.OUT_OF_RANGE, "parch", "-1"),
        (RowIssue.NOT_ALLOWED, "pclass", "4"),
        (RowIssue.NOT_ALLOWED, "sex", "unknown"),
        (RowIssue.NOT_ALLOWED, "embarked", "X"),
        (RowIssue.MISSING_REQUIRED, "name", None),
        (RowIssue.MISSING_REQUIRED, "sex", None),
        (RowIssue.MISSING_REQUIRED, "pclass", None),
        (RowIssue.TOO_LONG, "ticket", "T" * 1_001),
    ],
    columns=["issue", "column", "value"],
    dtype=object,  # keeps None as None: an emptied cell, not the float NaN
).astype({"issue": str, "column": str})
# Issue columns as validation reports them (row, column, issue, value), plus the copied row.
_TRUTH_TYPES = {"row": "int64", "column": str, "issue": str, "value": object,
                "copies_row": "Int64"}
_CELL_ERROR_KINDS = list(dict.fromkeys(_CELL_ERRORS["issue"]))
_FORMULA_NAMES = (
    '=HYPERLINK("https://example.invalid/","{}")',
    "+{}",
    "-{}",
    "@SUM(1+1)*cmd|' /C calc'!A0 {}",
)


@dataclass(frozen=True)
class _Manifest:
    """The real passenger list arranged for drawing whole travel parties and renaming them."""

    rows: pd.DataFrame  # sorted by party, so each party is a contiguous run of rows
    party_start: np.ndarray
    party_size: np.ndarray
    party_class: np.ndarray
    ticket_code: np.ndarray
    ticket_prefix: np.ndarray
    surnames: np.ndarray
    surname_code: np.ndarray
    given_names: np.ndarray  # unique per (sex, title) cell, each cell a contiguous run
    cell_start: np.ndarray  # per row: where its cell's run begins, how long it is, and
    cell_size: np.ndarray   # where the row's own given names sit within it
    given_rank: np.ndarray


@cache
def _titanic() -> DatasetSpec:
    return load_spec("titanic")


@cache
def _manifest() -> _Manifest:
    real = pd.read_csv(_titanic().bundled_path(), na_values=["?"], keep_default_na=False)
    real = real[list(TITANIC3_COLUMNS)].assign(party=_travel_parties(real))
    real = real.sort_values(["party", "ticket"], kind="stable").reset_index(drop=True)
    party = real.pop("party").to_numpy()
    party_start = np.flatnonzero(np.r_[True, party[1:] != party[:-1]])
    surname, given = real["name"].str.split(", ", n=1, expand=True).to_numpy(dtype=object).T
    surnames, surname_code = np.unique(surname, return_inverse=True)
    catalogue, placed = _given_name_catalogue(real["sex"], pd.Series(given, dtype=str))
    return _Manifest(
        rows=real,
        party_start=party_start,
        party_size=np.diff(np.r_[party_start, len(real)]),
        party_class=real["pclass"].to_numpy()[party_start],
        ticket_code=pd.factorize(real["ticket"])[0],
        ticket_prefix=_ticket_prefixes(real["ticket"]),
        surnames=surnames,
        surname_code=surname_code,
        given_names=catalogue,
        cell_start=placed["start"].to_numpy(),
        cell_size=placed["size"].to_numpy(),
        given_rank=placed["rank"].to_numpy(),
    )


def _travel_parties(real: pd.DataFrame) -> np.ndarray:
    """A party label per passenger, shared by everyone linked to them through other passengers.

    Links are a shared ticket, or a shared surname and fare: the family key of the features,
    which catches relatives who booked apart.
    """
    surname = real["name"].str.split(",").str[0].str.strip().str.lower()
    family = (surname + "|" + real["fare"].map("{:.2f}".format)).where(real["fare"].notna())
    party = pd.Series(np.arange(len(real)))
    while True:
        linked = party
        for link in (real["ticket"].to_numpy(), family.to_numpy()):
            smallest = linked.groupby(link).transform("min")
            linked = smallest.where(pd.notna(link), linked).astype(int)
        if linked.equals(party):
            return party.to_numpy()
        party = linked


def _ticket_prefixes(ticket: pd.Series) -> np.ndarray:
    """The letters before a ticket's number ("PC ", "A/5 "): they say which office sold it."""
    prefix = ticket.str.extract(r"^(.*?)\d*$")[0]
    # Only LINE has no number; it needs a space before the number it is given.
    prefix = prefix.where((prefix == "") | prefix.str.endswith(" "), prefix + " ")
    return prefix.to_numpy(dtype=object)


def _given_name_catalogue(sex: pd.Series, given: pd.Series) -> tuple[np.ndarray, pd.DataFrame]:
    """Distinct given names ("Mrs. Jacques (Lily May Peel)") grouped by sex and title.

    Renaming rotates a row within its cell, which keeps title, sex and age plausible together
    and maps distinct names to distinct names; that needs each given name in one cell only.
    """
    cells = pd.DataFrame({"cell": sex + "|" + given.str.extract(r"^([^.]+)\.")[0], "given": given})
    catalogue = cells.drop_duplicates().sort_values(["cell", "given"]).reset_index(drop=True)
    if catalogue["given"].duplicated().any():
        raise DatasetSpecError("a given name appears under two sex/title cells; names could repeat")
    catalogue["rank"] = catalogue.groupby("cell").cumcount()
    catalogue["start"] = catalogue.index - catalogue["rank"]
    catalogue["size"] = catalogue.groupby("cell")["rank"].transform("size")
    placed = cells.merge(catalogue, on=["cell", "given"], how="left")
    return catalogue["given"].to_numpy(dtype=object), placed


def synthetic_passengers(rows: int, *, seed: int = 0, shift: Shift | None = None) -> pd.DataFrame:
    """`rows` passengers in titanic3 columns; the same seed and shift give the same frame.

    Each row keeps its source passenger's fate, class, sex, family counts, cabin, port, boat
    and destination, so survival stays consistent with the features; age and fare move a
    little, and the order is shuffled the way a stream of arrivals would be.
    """
    if rows < 0:
        raise ValueError("rows must be >= 0")
    shift = shift or Shift()
    manifest = _manifest()
    rng = np.random.default_rng(seed)
    source, party, parties_drawn = _draw_rows(manifest, rows, shift, rng)
    order = rng.permutation(rows)
    source, party = source[order], party[order]
    frame = manifest.rows.take(source).reset_index(drop=True)
    frame["name"] = _names(manifest, source, party, parties_drawn, rng)
    frame["ticket"] = _tickets(manifest, source, party, rng)
    frame["age"] = _ages(frame["age"].to_numpy(), shift.age_offset, rng)
    frame["fare"] = _fares(frame["fare"].to_numpy(), party, parties_drawn, shift, rng)
    return frame


def _draw_rows(manifest: _Manifest, rows: int, shift: Shift,
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, int]:
    """Source row and drawn-party number per output row, plus how many parties were drawn.

    Parties are weighted to the class mix (no real party spans classes), then rows are
    thinned to the female share within each class, so both targets hold at once.
    """
    party_weight = _party_weights(manifest, shift.class_mix)
    keep_chance = _keep_chances(manifest, shift.female_share)
    rows_per_draw = float(party_weight @ np.add.reduceat(keep_chance, manifest.party_start))
    sources, parties = [np.empty(0, dtype=int)], [np.empty(0, dtype=int)]
    drawn = collected = 0
    while collected < rows:
        draws = int((rows - collected) / rows_per_draw * 1.05) + 16
        chosen = rng.choice(len(party_weight), size=draws, p=party_weight)
        sizes = manifest.party_size[chosen]
        first_of_draw = np.repeat(np.cumsum(sizes) - sizes, sizes)
        source = (np.repeat(manifest.party_start[chosen], sizes)
                  + np.arange(sizes.sum()) - first_of_draw)
        kept = rng.random(len(source)) < keep_chance[source]
        sources.append(source[kept])
        parties.append(np.repeat(np.arange(drawn, drawn + draws), sizes)[kept])
        drawn += draws
        collected += int(kept.sum())
    return np.concatenate(sources)[:rows], np.concatenate(parties)[:rows], drawn


def _party_weights(manifest: _Manifest,
                   class_mix: tuple[float, float, float] | None) -> np.ndarray:
    """Draw chance per party that yields the class mix in rows, not in parties."""
    real_class = manifest.rows["pclass"].to_numpy()
    rows_in_class = np.bincount(real_class, minlength=4)[1:]
    mix = np.asarray(class_mix if class_mix is not None else rows_in_class / len(real_class))
    weight = mix[manifest.party_class - 1] / rows_in_class[manifest.party_class - 1]
    return weight / weight.sum()


def _keep_chances(manifest: _Manifest, female_share: float | None) -> np.ndarray:
    """Per real row, the chance a drawn copy is kept: equal unless the female share shifts."""
    real = manifest.rows
    if female_share is None:
        return np.ones(len(real))
    female = real["sex"] == "female"
    real_share = female.groupby(real["pclass"]).transform("mean").to_numpy()
    weight = np.where(female, female_share / real_share, (1 - female_share) / (1 - real_share))
    return weight / weight.max()


def _names(manifest: _Manifest, source: np.ndarray, party: np.ndarray, parties_drawn: int,
           rng: np.random.Generator) -> pd.Series:
    """Real surnames and given names recombined, the same way for everyone in a party.

    Rotating surnames, and given names within their sex/title cell, by one offset per party
    keeps relatives' shared surname and keeps names distinct within the party.
    """
    surname_offset = rng.integers(0, len(manifest.surnames), parties_drawn)[party]
    given_offset = rng.integers(0, 2**31, parties_drawn)[party]
    surname_code = (manifest.surname_code[source] + surname_offset) % len(manifest.surnames)
    given_code = (manifest.cell_start[source]
                  + (manifest.given_rank[source] + given_offset) % manifest.cell_size[source])
    surname, given = manifest.surnames[surname_code], manifest.given_names[given_code]
    return pd.Series(surname, dtype=str) + ", " + pd.Series(given, dtype=str)


def _tickets(manifest: _Manifest, source: np.ndarray, party: np.ndarray,
             rng: np.random.Generator) -> pd.Series:
    """The source ticket's office prefix and a number only this party's copy of it has."""
    copy = party * (manifest.ticket_code.max() + 1) + manifest.ticket_code[source]
    distinct, copy_id = np.unique(copy, return_inverse=True)
    number = _FIRST_TICKET_NUMBER + rng.permutation(len(distinct))[copy_id]
    return pd.Series(manifest.ticket_prefix[source], dtype=str) + pd.Series(number).astype(str)


def _ages(age: np.ndarray, offset: float, rng: np.random.Generator) -> np.ndarray:
    """Nearby ages at titanic3's precision: whole years (or halves) for most, months for babies.

    Missing ages stay missing, so the missing rate follows the real one class by class.
    """
    baby = age < 1
    step = np.where(baby, 1 / 12, 1.0)
    spread = np.where(baby, 0.1, 0.05 * age + 0.5)
    moved = age + step * np.round(rng.normal(size=len(age)) * spread / step)
    moved = np.where(baby, np.clip(moved, 1 / 12, 11 / 12), np.clip(moved, 1, 100))
    return np.clip(np.round(moved + offset, 4), 0, 100)


def _fares(fare: np.ndarray, party: np.ndarray, parties_drawn: int, shift: Shift,
           rng: np.random.Generator) -> np.ndarray:
    """Fares moved by one factor per party, so fares shared within it stay shared."""
    party_factor = np.exp(rng.normal(scale=_FARE_SPREAD, size=parties_drawn))[party]
    moved = fare * party_factor * shift.fare_factor + shift.fare_offset
    return np.round(np.maximum(moved, 0), 4)


def inject_errors(frame: pd.DataFrame, *, rate: float, seed: int = 0,
                  formula_names: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Corrupts round(rate * rows) rows with one known error each; returns (frame, truth).

    `truth` has one row per changed row: `row` (0-based position), `column`, `issue`
    (an `RowIssue`), `value` (the text written, None for an emptied cell) and `copies_row`
    (for duplicate_key, the earlier untouched row whose name and ticket were copied).
    `formula_names` more rows get a name that starts like a spreadsheet formula; they are
    valid rows, so they are not counted in the rate. Touched columns become text (object
    dtype, None for missing), as they would be in a raw file.
    """
    if not 0 <= rate <= 1:
        raise ValueError("rate must be between 0 and 1")
    rng = np.random.default_rng(seed)
    corrupted = np.sort(rng.choice(len(frame), size=round(rate * len(frame)), replace=False))
    free = np.ones(len(frame), dtype=bool)
    free[corrupted] = False
    if not 0 <= formula_names <= free.sum():
        raise ValueError(f"formula_names must be between 0 and {free.sum()} for this frame")
    formulas = np.sort(rng.choice(np.flatnonzero(free), size=formula_names, replace=False))
    free[formulas] = False
    untouched = np.flatnonzero(free)
    duplicates = _pick_duplicates(corrupted, untouched, rng)
    truth = pd.concat([
        _cell_errors(corrupted[~np.isin(corrupted, duplicates)], rng),
        _duplicate_keys(duplicates, untouched, rng),
        _formula_names(frame, formulas, rng),
    ]).astype(_TRUTH_TYPES).sort_values("row", kind="stable").reset_index(drop=True)
    return _apply(frame, truth), truth


def _pick_duplicates(corrupted: np.ndarray, untouched: np.ndarray,
                     rng: np.random.Generator) -> np.ndarray:
    """An equal share of the corrupted rows, among those with an untouched row before them."""
    share = len(corrupted) // (len(_CELL_ERROR_KINDS) + 1)
    eligible = corrupted[corrupted > untouched[0]] if len(untouched) else corrupted[:0]
    return np.sort(rng.choice(eligible, size=min(share, len(eligible)), replace=False))


def _cell_errors(rows: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
    """Kinds dealt out in equal shares, then one of each kind's corruptions per row."""
    kinds = rng.permutation(np.resize(np.array(_CELL_ERROR_KINDS, dtype=object), len(rows)))
    options = _CELL_ERRORS.groupby("issue").indices
    chosen = [options[kind][rng.integers(len(options[kind]))] for kind in kinds]
    errors = _CELL_ERRORS.iloc[chosen].reset_index(drop=True)
    return errors.assign(row=rows, copies_row=pd.NA)[list(_TRUTH_TYPES)]


def _duplicate_keys(rows: np.ndarray, untouched: np.ndarray,
                    rng: np.random.Generator) -> pd.DataFrame:
    """Each copies an untouched row before it, so the first occurrence is the clean one."""
    earlier = np.searchsorted(untouched, rows)
    copied = untouched[np.floor(rng.random(len(rows)) * earlier).astype(int)]
    return pd.DataFrame({
        "row": rows, "column": _titanic().entity.key, "issue": str(RowIssue.DUPLICATE_KEY),
        "value": None, "copies_row": copied,
    })[list(_TRUTH_TYPES)]


def _formula_names(frame: pd.DataFrame, rows: np.ndarray,
                   rng: np.random.Generator) -> pd.DataFrame:
    """The real name wrapped in a formula, so names stay unique within their ticket."""
    templates = rng.choice(_FORMULA_NAMES, size=len(rows))
    names = [template.format(name) for template, name in zip(templates, frame["name"].iloc[rows])]
    return pd.DataFrame({
        "row": rows, "column": "name", "issue": str(FORMULA_INJECTION),
        "value": pd.Series(names, dtype=object), "copies_row": pd.NA,
    })[list(_TRUTH_TYPES)]


def _apply(frame: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """The frame with the truth's values written in; key columns are copied for duplicates."""
    corrupted = frame.copy()
    writes = [truth[truth["issue"] != RowIssue.DUPLICATE_KEY][["row", "column", "value"]]]
    duplicates = truth[truth["issue"] == RowIssue.DUPLICATE_KEY]
    copied = duplicates["copies_row"].to_numpy(dtype=int)
    for column in _key_source_columns():
        writes.append(pd.DataFrame({"row": duplicates["row"], "column": column,
                                    "value": frame[column].to_numpy(dtype=object)[copied]}))
    for column, cells in pd.concat(writes).groupby("column"):
        text = _as_text(corrupted[column])
        text[cells["row"].to_numpy(dtype=int)] = cells["value"].to_numpy(dtype=object)
        corrupted[column] = pd.Series(text, index=corrupted.index, dtype=object)
    return corrupted


def _key_source_columns() -> list[str]:
    """The titanic3 columns the entity key is derived from (name and ticket)."""
    spec = _titanic()
    return [column for column in TITANIC3_COLUMNS
            if spec.canonical(column) in spec.entity.derive_from]


def _as_text(column: pd.Series) -> np.ndarray:
    """A column as a raw file holds it: text, None where empty."""
    text = column.to_numpy(dtype=object, na_value=None, copy=True)
    if not pd.api.types.is_string_dtype(column):
        text[column.notna().to_numpy()] = column.dropna().astype(str).to_numpy(dtype=object)
    return text


def write_passengers(frame: pd.DataFrame, path: str | Path) -> Path:
    """Writes titanic3-style CSV, gzipped CSV or Parquet, chosen by the file's suffix."""
    path = Path(path)
    suffix = path.name.lower()
    if suffix.endswith(".csv.gz"):
        # No timestamp in the gzip header: the same frame gives the same bytes, and the same
        # checksum, so re-ingesting it stays a no-op. Level 6 (zlib's usual) rather than
        # gzip's 9, which is much slower for a barely smaller file.
        gzip = {"method": "gzip", "mtime": 0, "compresslevel": 6}
        frame.to_csv(path, index=False, compression=gzip)
    elif suffix.endswith(".csv"):
        frame.to_csv(path, index=False)
    elif suffix.endswith(".parquet"):
        frame.to_parquet(path, index=False)
    else:
        raise ValueError(f"cannot tell the format of {path.name}: use .csv, .csv.gz or .parquet")
    return path
