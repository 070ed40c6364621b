"""Where models registered before builders had packages find `TitanicFeatures`: their skops
files name the class `lifeboat.features.titanic.TitanicFeatures`, so this path must keep it."""

from lifeboat.features.builders.titanic.layer import TitanicFeatures

__all__ = ["TitanicFeatures"]
