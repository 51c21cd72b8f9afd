"""Benchmarks (not tests): ``python -m bench`` / ``make bench``. See docs/introspection.md."""
