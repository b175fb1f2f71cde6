"""Storage: one small key-value protocol, an in-memory and a Redis implementation."""

from shared.storage.base import Store

__all__ = ["Store"]
