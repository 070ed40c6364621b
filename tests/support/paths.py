"""The repository's own folders, for tests that read its shipped files (examples, deploy,
dags, .env.example) wherever pytest was started from."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
