"""Aggregated token introspection: RFC 7662 plus the institutions the grant covers.

- ``endpoint``       ``POST /introspect``, read as its protocol's steps
- ``response``       the ``institutions`` member, and a worker's recently built ones
- ``freshness``      fresh upstream tokens: cache, concurrent refresh, single-flight
- ``single_flight``  one refresh per registration at a time, across every worker
"""
