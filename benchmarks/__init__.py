"""Benchmarks: slow, honest measurements of what ships. Each module exposes `main(argv)`."""
