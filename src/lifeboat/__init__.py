"""Lifeboat: end-to-end MLOps for tabular classification."""

import warnings

__version__ = "0.1.0"

# Where PySpark is installed (the spark extra), importing pandera loads pyspark.pandas, which
# warns on every command that it does not support pandas 3 yet; Lifeboat hands Spark Arrow.
warnings.filterwarnings("ignore", "PySpark does not yet fully support pandas", FutureWarning)
