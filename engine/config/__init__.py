"""Typed, validated, versioned configurations (one dataclass per command)."""

from engine.config.base import CONFIG_VERSION, Config, from_dict, load_config, to_dict

__all__ = ["CONFIG_VERSION", "Config", "from_dict", "load_config", "to_dict"]
