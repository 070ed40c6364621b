"""Synthetic data, seeded and realistic: the `customers` dataset, which no public data
has, and as many Titanic passengers as a benchmark or test needs (with drift on demand).

The customers writer is a spec's `generated_by`; the passengers are imported by tests and
benchmarks by their module (`lifeboat.synthetic.passengers`).
"""

from collections.abc import Callable
from pathlib import Path

from lifeboat.synthetic.customers import write_customers

# Writers of seeded data for datasets no public source has (a spec's `generated_by`):
# (folder, seed) -> the files written, entities before their events.
GENERATORS: dict[str, Callable[[Path, int], list[Path]]] = {"customers": write_customers}

__all__ = ["GENERATORS", "write_customers"]
