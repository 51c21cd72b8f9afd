"""Tests of the fake Moneyhub and of the Moneyhub upstream plugin."""
