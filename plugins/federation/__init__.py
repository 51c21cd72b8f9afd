"""The ``federation`` plugin (``AGGREGATOR_PLUGINS=federation``): another instance of this
product as an upstream, one registration here per institution granted there. See
docs/plugins.md."""
