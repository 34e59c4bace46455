"""A bounded map whose least recently used entries go first (pure; callers bring their own lock)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class LruCache(Generic[K, V]):
    """At most `bound` entries; getting one makes it the most recently used. Not thread-safe."""

    def __init__(self, bound: int) -> None:
        if bound < 1:
            raise ValueError("an LRU cache holds at least one entry")
        self.bound = bound
        self._entries: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        value = self._entries.get(key)
        if value is not None:
            self._entries.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> list[V]:
        """Add (or refresh) an entry; the entries that went to keep the bound."""
        self._entries[key] = value
        self._entries.move_to_end(key)
        evicted = []
        while len(self._entries) > self.bound:
            evicted.append(self._entries.popitem(last=False)[1])
        return evicted

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
