import importlib
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from lifeboat.datasets import DatasetSpec
from lifeboat.errors import DatasetSpecError
from lifeboat.features import build_feature_pipeline, feature_view
from lifeboat.features.builders.titanic import view as titanic_view
from lifeboat.features.builders.titanic.layer import TitanicFeatures
from lifeboat.features.builders.titanic.view import deck_of, title_of
from lifeboat.features.views import view_version
from lifeboat.training import model_pipeline

LEAKS = ["boat", "body", "home_dest"]


@pytest.fixture(scope="module")
def passengers(titanic: DatasetSpec) -> pd.DataFrame:
    frame = pd.read_csv(titanic.bundled_path(), na_values=["?"], keep_default_na=False)
    return frame.rename(columns={"home.dest": "home_dest"})


@pytest.mark.parametrize(("name", "title"), [
    ("Braund, Mr. Owen Harris", "Mr"),
    ("Cumings, Mrs. John Bradley (Florence Briggs Thayer)", "Mrs"),
    ("Aubart, Mme. Leontine Pauline", "Mrs"),
    ("Heikkinen, Miss. Laina", "Miss"),
    ("Duff Gordon, Lady. (Lucille Christiana Sutherland)", "Rare"),
    ("Rothes, the Countess. of (Lucy Noel Martha Dyer-Edwards)", "Rare"),
    ("Palsson, Master. Gosta Leonard", "Master"),
    (None, "Rare"),
])
def test_title_from_name(name: str | None, title: str) -> None:
    assert title_of(name) == title


def test_deck_from_cabin() -> None:
    assert [deck_of(c) for c in ["C85", "B57 B59 B63 B66", " e12", None, ""]] == ["C", "B", "E", "U", "U"]


def test_derived_features_come_from_raw_fields(titanic: DatasetSpec) -> None:
    record = {"pclass": 3, "name": "Braund, Mr. Owen Harris", "sex": "male", "age": 22,
              "sibsp": 1, "parch": 0, "fare": 7.25, "cabin": None, "embarked": "S"}
    fitted = TitanicFeatures().fit(feature_view(titanic).from_records([record]))
    row = fitted.transform(feature_view(titanic).from_records([record])).iloc[0]
    assert row["title"] == "Mr"
    assert row["family_size"] == 2 and row["is_alone"] == 0
    assert row["has_cabin"] == 0 and row["deck"] == "U"
    assert row["fare_per_person"] == pytest.approx(3.625)
    assert row["pclass_x_fare"] == pytest.approx(21.75)
    assert row["age_x_fare"] == pytest.approx(159.5)


def test_missing_age_is_imputed_from_training_statistics_not_the_scored_rows(
        titanic: DatasetSpec, passengers: pd.DataFrame) -> None:
    features = TitanicFeatures().fit(feature_view(titanic).from_records(passengers))
    known = passengers.assign(title=passengers["name"].map(title_of)).dropna(subset=["age"])
    expected = known[(known["title"] == "Master") & (known["pclass"] == 3)]["age"].median()
    boy = {"pclass": 3, "name": "Smith, Master. Tom", "sex": "male"}
    alone = features.transform(feature_view(titanic).from_records([boy]))["age"].iloc[0]
    in_batch = features.transform(feature_view(titanic).from_records([boy, {**boy, "age": 80.0}]))["age"].iloc[0]
    assert alone == in_batch == pytest.approx(expected)


def test_leaky_columns_never_reach_the_model(titanic: DatasetSpec, passengers: pd.DataFrame) -> None:
    """Plant the label in boat/body/home.dest: a leak would change the model; none may."""
    labels = passengers["survived"]
    planted = passengers.assign(boat=labels.astype(str), body=labels * 1000.0,
                                home_dest=labels.map({0: "down", 1: "home"}))
    scrubbed = passengers.assign(boat=None, body=np.nan, home_dest=None)
    assert set(titanic.input_columns).isdisjoint(LEAKS)

    def fitted(frame: pd.DataFrame):  # noqa: ANN202
        model = model_pipeline(titanic, LogisticRegression(max_iter=2000))
        return model.fit(feature_view(titanic).from_records(frame), labels)

    with_plant, without = fitted(planted), fitted(scrubbed)
    view = feature_view(titanic)
    # The view never reads a leak, so planted and scrubbed frames give the very same rows.
    pd.testing.assert_frame_equal(view.from_records(planted), view.from_records(scrubbed))
    assert set(view.columns).isdisjoint(LEAKS)
    np.testing.assert_array_equal(with_plant.predict_proba(view.from_records(planted)),
                                  without.predict_proba(view.from_records(scrubbed)))
    names = " ".join(with_plant.named_steps["preprocess"].get_feature_names_out()).lower()
    assert not any(leak in names for leak in ("boat", "body", "home"))


def test_a_spec_cannot_list_a_leak_as_a_feature(titanic: DatasetSpec) -> None:
    leaky = titanic.model_copy(update={"features": titanic.features.model_copy(
        update={"categorical": [*titanic.features.categorical, "boat"]})})
    with pytest.raises(DatasetSpecError, match="boat"):
        build_feature_pipeline(leaky)


def test_a_passengers_own_label_never_shapes_their_own_features(
        titanic: DatasetSpec, passengers: pd.DataFrame) -> None:
    """Group features come from companions' fates; flipping one label moves only the others."""
    frame = feature_view(titanic).from_records(passengers)
    labels = passengers["survived"].to_numpy()
    flipped = labels.copy()
    flipped[0] = 1 - flipped[0]
    before = TitanicFeatures().fit(frame, labels).transform(frame)
    after = TitanicFeatures().fit(frame, flipped).transform(frame)
    group_columns = [c for c in before.columns if c.endswith(("_survival", "_companions"))]
    pd.testing.assert_series_equal(before.loc[0, group_columns], after.loc[0, group_columns])
    changed = (before[group_columns] != after[group_columns]).any(axis=1)
    assert changed.sum() > 0 and not changed.iloc[0]


VIEW_MODULE = '''"""A view."""

import pandas as pd

# the rate a test view applies
RATE = 2.0


def compute(raw: pd.DataFrame) -> pd.DataFrame:
    """Doubles x."""
    return pd.DataFrame({"x": raw["x"] * RATE})
'''


@pytest.mark.parametrize(("edit", "same"), [
    (lambda source: "# a new comment\n" + source, True),
    (lambda source: source.replace('"""Doubles x."""', '"""Doubles x, reworded."""'), True),
    (lambda source: source.replace("(raw: pd.DataFrame)", "(\n    raw: pd.DataFrame,\n)"), True),
    (lambda source: source.replace("RATE = 2.0", "RATE = 3.0"), False),
])
def test_a_view_version_changes_with_its_code_not_its_comments_or_layout(
        edit: object, same: bool, tmp_path: Path, titanic: DatasetSpec,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    before = _version_of(tmp_path, "view_before", VIEW_MODULE, titanic)
    after = _version_of(tmp_path, "view_after", edit(VIEW_MODULE), titanic)
    assert (before == after) is same


def test_a_comment_added_to_the_titanic_view_keeps_its_version(
        tmp_path: Path, titanic: DatasetSpec, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    source = Path(titanic_view.__file__).read_text()
    commented = "# Reviewed again: no change to any feature.\n" + source.replace(
        '"""The feature view: typed raw fields in', '"""The feature view, documented anew: typed raw fields in')
    copy = _import(tmp_path, "titanic_view_commented", commented)
    view = feature_view(titanic)
    assert commented != source
    assert view_version(titanic, view.name, view.columns, copy.passenger_profile) == view.version


def _version_of(folder: Path, name: str, source: str, spec: DatasetSpec) -> str:
    return view_version(spec, "test_view", {"x": "float"}, _import(folder, name, source).compute)


def _import(folder: Path, name: str, source: str) -> ModuleType:
    """A module of `source`, under a name no earlier test imported."""
    unique = f"{name}_{folder.name}".replace("-", "_")
    (folder / f"{unique}.py").write_text(source)
    importlib.invalidate_caches()
    return importlib.import_module(unique)
