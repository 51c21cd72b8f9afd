"""Helpers for testing the aggregator and its plugins against real servers."""
