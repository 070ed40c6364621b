"""Passengers the serving tests send and look up: the README's example record, spelled as
Kaggle's file spells its columns, and ids the trained home's online store holds."""

from __future__ import annotations

from sqlalchemy import select

from lifeboat.config import Settings
from lifeboat.datasets import DatasetSpec
from lifeboat.db import Database, dataset_table

BRAUND = {"Pclass": 3, "Name": "Braund, Mr. Owen Harris", "Sex": "male", "Age": 22, "SibSp": 1,
          "Parch": 0, "Fare": 7.25, "Embarked": "S"}


def stored_passengers(settings: Settings, spec: DatasetSpec, count: int) -> list[str]:
    """Ids of passengers the trained home's online store holds vectors for."""
    database = Database(settings.db_url)
    key = dataset_table(spec).c[spec.entity.key]
    with database.session() as session:
        ids = list(session.scalars(select(key).order_by(key).limit(count)))
    database.dispose()
    return ids
