"""Interaction sources. `read_interactions` picks the reader from the path or URL."""

from training.readers.dispatch import read_interactions, read_items

__all__ = ["read_interactions", "read_items"]
