"""Accounts for the example churn spec (examples/churn.yaml), shared by the tests that use it."""

from __future__ import annotations

import numpy as np
import pandas as pd


def churn_accounts(rows: int, seed: int) -> pd.DataFrame:
    """Accounts whose cancellations follow tenure, support calls and plan."""
    rng = np.random.default_rng(seed)
    plan = rng.choice(["basic", "plus", "pro"], rows, p=[0.5, 0.3, 0.2])
    tenure = rng.integers(0, 72, rows)
    calls = rng.poisson(1.5, rows)
    fee = np.select([plan == "basic", plan == "plus"], [12.0, 25.0], 49.0) + rng.normal(0, 2, rows)
    odds = -0.6 - 0.05 * tenure + 0.6 * calls + np.where(plan == "basic", 0.5, -0.3)
    return pd.DataFrame({
        "account_id": [f"A{i:05d}" for i in range(rows)], "plan": plan, "tenure_months": tenure,
        "monthly_fee": fee.round(2), "support_calls": calls,
        "churned": (rng.random(rows) < 1 / (1 + np.exp(-odds))).astype(int),
    })
