"""The package version (read by ``pyproject.toml`` and part of every cache key)."""

__version__ = "0.1.0"
