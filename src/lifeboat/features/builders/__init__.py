"""The built-in feature builders, one module (or package) each, named as a spec names them:
`features.builder: titanic` is `lifeboat.features.builders.titanic.BUILDER`. Adding one here
is adding its module; nothing else lists them (`features.builder.feature_builder`)."""
