"""Lifeboat: end-to-end MLOps for tabular classification."""

__version__ = "0.1.0"
