"""Answers remembered for one group-commit batch (issue 15).

A batch writes many chargers' messages in one transaction; a question each of them asks the
database with the same answer for all (is anyone subscribed to this webhook event?) is asked
once per batch. Outside a batch every call asks. The answer is as of the batch's first asker: a
change committed during the batch counts from the next one, as if the batch had run a moment
earlier.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

T = TypeVar("T")

_batch = threading.local()  # .memo: this thread's batch's answers, None outside a batch


@contextmanager
def batch_memos() -> Iterator[None]:
    """Within the block, ``batch_memoized`` answers each key once (this thread only)."""
    _batch.memo = {}
    try:
        yield
    finally:
        _batch.memo = None


def batch_memoized(key: Hashable, compute: Callable[[], T]) -> T:
    """``compute()``, asked once per key within ``batch_memos``; every time outside it."""
    memo: dict[Hashable, Any] | None = getattr(_batch, "memo", None)
    if memo is None:
        return compute()
    if key not in memo:
        memo[key] = compute()
    answer: T = memo[key]
    return answer
