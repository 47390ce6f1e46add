"""Errors of the feature store that callers act on."""

from __future__ import annotations

from feature_store.base import StoreUnavailableError


class VersionNotReadyError(Exception):
    """Activation of a version that was never completely written is refused."""


__all__ = ["StoreUnavailableError", "VersionNotReadyError"]
