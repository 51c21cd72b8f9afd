"""Many callers at the same instant, as when several app instances poll at once."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def at_once(count: int, call: Callable[[], T]) -> list[T]:
    """Run ``call`` in ``count`` threads released together; their results (any order)."""
    barrier, results, mutex = threading.Barrier(count), [], threading.Lock()

    def run() -> None:
        barrier.wait()
        result = call()
        with mutex:
            results.append(result)

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results
