"""A beat sweep's rows, each handled on its own: one whose handling raises is logged and passed over.

A sweep that let one row's exception out stopped at that row, and every row after it was never
handled, at every run (the same row came first again and failed again): one charger whose release
failed kept every later dead process's chargers online, one campaign whose step failed held back
every later campaign. The sweeps that loop over rows go through ``each_passed_over``; a row passed
over is tried again at the next run (each is found again by its condition), alone.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


def each_passed_over(
    items: Iterable[Item],
    call: Callable[[Item], Result],
    *,
    logger: logging.Logger,
    failed: str,
    named: Callable[[Item], object] = lambda item: item,
    raised: tuple[type[Exception], ...] = (),
) -> list[Result]:
    """``[call(item) for item in items]``, but an item whose call raises is logged on ``logger``
    (``failed``, a %-format of one ``%s``: the item, or what ``named`` makes of it: a row's primary
    key, read without the database) with its traceback and left out; the others are called as if
    it had not been there. An exception of ``raised`` (an outage every item would meet, which the
    sweep is documented to raise) ends the sweep as before. Each call's transaction is its own:
    make it atomic (a caller's transaction around the sweep is not rolled back to the item)."""
    results: list[Result] = []
    for item in items:
        try:
            results.append(call(item))
        except raised:
            raise
        except Exception:
            logger.exception(failed, named(item))
    return results
