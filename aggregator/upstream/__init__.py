"""Upstream providers: the plugin contract (``contract``) and how plugins are found (``loader``)."""
