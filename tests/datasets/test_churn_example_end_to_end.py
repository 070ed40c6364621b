"""A dataset added by a spec file alone: the README's example (examples/churn.yaml) goes
through ingest → features → train → serve with the real command line and service, no code."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from lifeboat.datasets import load_spec
from lifeboat.serving import create_app
from tests.support.churn_accounts import churn_accounts
from tests.support.cli import lifeboat
from tests.support.homes import make_settings
from tests.support.paths import EXAMPLES

SPEC = EXAMPLES / "churn.yaml"


def _accounts(rows: int) -> pd.DataFrame:
    """Accounts with the reason of each cancellation (a leak) and two rows the spec rejects."""
    frame = churn_accounts(rows, seed=7)
    frame["cancel_reason"] = np.where(frame["churned"] == 1, "price", "")
    frame.loc[0, "plan"] = "platinum"      # not an allowed plan
    frame.loc[1, "tenure_months"] = -3     # below the minimum
    return frame


@pytest.fixture(scope="module")
def churn_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home where the churn dataset was ingested, materialized and trained by the CLI."""
    home = tmp_path_factory.mktemp("churn") / "home"
    home.mkdir()
    data = home.parent / "accounts.csv"
    _accounts(600).to_csv(data, index=False)
    env = {"LIFEBOAT_DATASET": str(SPEC)}
    for args in (("ingest", str(data)), ("features", "materialize"), ("train", "--promote")):
        result = lifeboat(home, *args, COLUMNS="200", **env)
        assert result.returncode == 0, f"lifeboat {' '.join(args)}: {result.stderr}"
    return home


def test_ingest_keeps_good_rows_and_quarantines_bad_ones_by_the_spec(churn_home: Path) -> None:
    listing = lifeboat(churn_home, "models", LIFEBOAT_DATASET=str(SPEC), COLUMNS="200")
    assert listing.returncode == 0 and "lifeboat-churn" in listing.stdout
    bad = next((churn_home / "landing" / "bad").glob("*accounts*"))
    reasons = pd.read_csv(bad)
    assert len(reasons) == 2
    assert set(reasons["issues"]) == {"plan: not_allowed", "tenure_months: out_of_range"}


def test_the_trained_model_serves_records_and_entity_ids(churn_home: Path) -> None:
    settings = make_settings(churn_home, dataset=str(SPEC))
    with TestClient(create_app(settings)) as client:
        model = client.get("/model").json()
        assert model["name"] == "lifeboat-churn"
        assert model["threshold"] == pytest.approx(0.2)  # the spec's costs: 1 / (1 + 4)
        risky = {"plan": "basic", "tenure_months": 1, "monthly_fee": 12, "support_calls": 6}
        loyal = {"plan": "pro", "tenure_months": 70, "monthly_fee": 49, "support_calls": 0}
        answer = client.post("/predict", json={"records": [risky, loyal]}).json()
        first, second = answer["predictions"]
        assert first["probability"] > second["probability"]
        for prediction in answer["predictions"]:
            assert prediction["prediction"] == int(prediction["probability"] >= 0.2)
        assert first["cancel_probability"] == first["probability"]
        assert first["label"] in {"stays", "cancels"}
        by_id = client.post("/predict", json={"entity_ids": ["A00002"]})
        assert by_id.status_code == 200, by_id.text
        wrong = client.post("/predict", json={"plan": "gold", "tenure_months": 3})
        assert wrong.status_code == 422 and "plan" in wrong.text
        page = client.get("/").text
        for field in load_spec(str(SPEC)).input_columns:
            assert f'name="{field}"' in page
        assert 'name="cancel_reason"' not in page
