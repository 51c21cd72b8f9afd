"""Settings: read from the environment, validated, one immutable object per process."""

from config.settings import ConfigError, Settings, load_settings

__all__ = ["ConfigError", "Settings", "load_settings"]
