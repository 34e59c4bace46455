"""A bounded, thread-safe memo of answers by content (the engine's caches)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from auditor.common.lru import LruCache

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Memo(Generic[K, V]):
    """The latest `size` answers; the least recently used go first."""

    def __init__(self, size: int) -> None:
        self._entries: LruCache[K, V] = LruCache(size)
        self._lock = threading.Lock()
        self._in_flight: dict[K, threading.Event] = {}

    def computed(self, key: K, compute: Callable[[], tuple[V, bool]]) -> V:
        """The answer for `key`, computed once however many threads ask at the same time.

        `compute` gives the answer and whether to keep it. At a thousand labs the labs of one class
        ask the same question together; without this, each would spend the solver's time on it.
        """
        while True:
            with self._lock:
                known = self._entries.get(key)
                if known is not None:
                    return known
                running = self._in_flight.get(key)
                if running is None:
                    self._in_flight[key] = threading.Event()
                    break
            running.wait()  # the one computing it is bounded by its own deadline
        try:
            value, keep = compute()
            if keep:
                self.put(key, value)
            return value
        finally:
            with self._lock:
                self._in_flight.pop(key).set()

    def get(self, key: K) -> V | None:
        with self._lock:
            return self._entries.get(key)

    def put(self, key: K, value: V) -> None:
        with self._lock:
            self._entries.put(key, value)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)
