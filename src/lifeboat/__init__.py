"""Lifeboat: end-to-end MLOps for tabular classification."""

import importlib
import sys
import warnings
from collections.abc import Callable
from typing import Any

__version__ = "0.1.0"

# Where PySpark is installed (the spark extra), importing pandera loads pyspark.pandas, which
# warns on every command that it does not support pandas 3 yet; Lifeboat hands Spark Arrow.
warnings.filterwarnings("ignore", "PySpark does not yet fully support pandas", FutureWarning)


def lazy_exports(package: str, modules: dict[str, tuple[str, ...]]) -> Callable[[str], Any]:
    """A package face's module `__getattr__`: each name comes from its module (`modules`:
    module name under `package` -> the names it exports) when it is first asked for.

    A face that imported every module at once made `lifeboat models` load pandas,
    scikit-learn and Alembic to print a table (4 s); the names and the face stay the same."""
    where = {name: module for module, names in modules.items() for name in names}

    def exported(name: str) -> Any:
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module = importlib.import_module(f"{package}.{where[name]}")
        face = sys.modules[package]
        for each in modules[where[name]]:  # all at once: a name may be its module's too
            setattr(face, each, getattr(module, each))
        return getattr(face, name)

    return exported
