"""The `titanic` feature builder: passenger profiles, and travel groups learned in training.

`view` holds the feature view, `passenger_profile` (its source is the view's version, so it
changes only when a feature does); `layer` the learned layer fitted on it inside the model,
`TitanicFeatures`; `replay` both, replayed without pandas for the compiled scorer.
"""

from lifeboat.features.builder import FeatureBuilder, LearnedLayer
from lifeboat.features.builders.titanic.layer import TitanicFeatures
from lifeboat.features.builders.titanic.replay import PassengerProfile, TitanicLayer
from lifeboat.features.builders.titanic.view import PROFILE_COLUMNS, passenger_profile

BUILDER = FeatureBuilder(
    view=passenger_profile,
    columns=lambda _spec: PROFILE_COLUMNS,
    replay=lambda _view: PassengerProfile(),
    learned=LearnedLayer(TitanicFeatures, TitanicLayer),
)
