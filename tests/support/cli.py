"""The command line as a user runs it: `python -m lifeboat` in a process of its own, in a
home of the test's, with the developer's database and tracking settings left out."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def lifeboat(home: Path, *args: str, **env_overrides: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "MLFLOW_TRACKING_URI")}
    env.update(LIFEBOAT_HOME=str(home), LIFEBOAT_SEARCH_ITERATIONS="2", **env_overrides)
    return subprocess.run([sys.executable, "-m", "lifeboat", *args], capture_output=True,
                          text=True, env=env, cwd=home.parent, timeout=600)


# Runs the command as the console script does, then names every module it imported.
_PROBE = ("import sys\nfrom lifeboat.cli import main\nsys.argv = ['lifeboat', *sys.argv[1:]]\n"
          "try:\n    main()\nfinally:\n    print(' '.join(sys.modules), file=sys.stderr)")


def imported_by(home: Path, *args: str) -> set[str]:
    """The top-level packages `lifeboat ARGS` imported, run in a process of its own in `home`."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "MLFLOW_TRACKING_URI")}
    result = subprocess.run([sys.executable, "-c", _PROBE, *args], capture_output=True,
                            text=True, env={**env, "LIFEBOAT_HOME": str(home)}, timeout=120)
    return {name.split(".")[0] for name in result.stderr.strip().splitlines()[-1].split()}
