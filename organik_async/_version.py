"""The installed version, read once from the package metadata (never written twice)."""

from __future__ import annotations

from importlib import metadata

__all__ = ["__version__"]

__version__: str = metadata.version("organik_async")
"""The installed version of organik_async, as its package metadata says."""
