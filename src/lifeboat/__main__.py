"""`python -m lifeboat` runs the CLI."""

from lifeboat.cli import main

main()
