"""Dataset specs: what a dataset's files hold and how Lifeboat learns from them."""

from lifeboat.datasets.spec import ColumnSpec, DatasetSpec, load_spec

__all__ = ["ColumnSpec", "DatasetSpec", "load_spec"]
