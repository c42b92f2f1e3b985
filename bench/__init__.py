"""Benchmarks: each starts what it measures and prints its figures; run one as `python -m bench.<name>`
(docs/benchmarks.md)."""
