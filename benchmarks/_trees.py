"""`--against TREE`: this source tree measured beside another one (a worktree of an earlier
commit: `git worktree add /tmp/before <commit>`), by turns in one run, so a slow minute of
the shared machine hits both. Each side runs as its own processes with its own `src/` first
on PYTHONPATH; the home they share is trained by the other tree's code, so the run also
shows that this tree serves a model registered before it."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

THIS_TREE = Path(__file__).resolve().parents[1]

# A first start, as `lifeboat up` makes it: the bundled rows loaded and a champion trained.
_BOOTSTRAP = """
from lifeboat.config import Settings
from lifeboat.datasets import load_spec
from lifeboat.db import Database
from lifeboat.orchestration import bootstrap
settings = Settings()
bootstrap(settings, Database(settings.db_url), load_spec(settings.dataset))
"""


def add_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--against", type=Path, metavar="TREE", default=None,
                        help="another checkout of Lifeboat (an earlier commit's worktree): "
                             "run both by turns and compare")


def sides(other: Path) -> dict[str, dict[str, str]]:
    """Each side's name and the environment that makes a process run its code."""
    source = other.resolve() / "src"
    if not (source / "lifeboat").is_dir():
        raise SystemExit(f"{other} is not a Lifeboat checkout (no src/lifeboat)")
    return {"this tree": {"PYTHONPATH": str(THIS_TREE / "src")},
            str(other): {"PYTHONPATH": str(source)}}


def bootstrap_with(other: Path, env: dict[str, str]) -> None:
    """Trains the shared home's champion with the other tree's code."""
    subprocess.run([sys.executable, "-c", _BOOTSTRAP], check=True,
                   env={**os.environ, **env, **sides(other)[str(other)]})
