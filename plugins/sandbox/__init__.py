"""The sandbox upstream: a demo bank server (``bank``) and the plugin that connects to it."""
