"""Faithful fakes of external services we cannot reach from tests, built from their docs."""
