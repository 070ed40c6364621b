"""Runs every benchmark in this package (see `benchmark_modules`), each with the same
arguments: each takes the options it knows, such as `--quick` or `--smoke`."""

from __future__ import annotations

import sys

from benchmarks import benchmark_modules


def main(argv: list[str]) -> int:
    failures = sum(benchmark.main(argv) != 0 for benchmark in benchmark_modules())
    return int(failures > 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
