"""Settings: read from the environment, validated, one immutable object per process."""

from config.settings import ConfigError, Settings, json_setting, load_settings

__all__ = ["ConfigError", "Settings", "json_setting", "load_settings"]
