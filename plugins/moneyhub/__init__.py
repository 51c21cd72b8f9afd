"""Moneyhub as an upstream: its identity service links banks, its Data API serves their data."""
