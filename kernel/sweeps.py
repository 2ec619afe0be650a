"""A beat sweep's rows, each handled on its own: one whose handling raises is logged and passed over;
a retention prune's rows, deleted a bounded chunk at a time (``rows_pruned``).

A sweep that let one row's exception out stopped at that row, and every row after it was never
handled, at every run (the same row came first again and failed again): one charger whose release
failed kept every later dead process's chargers online, one campaign whose step failed held back
every later campaign. The sweeps that loop over rows go through ``each_passed_over``; a row passed
over is tried again at the next run where the sweep finds its rows by their condition (most), not
where it has moved past it (the abandoned-commands sweep's owed configuration reads: that one
charger's mark is lost, no longer every later one's).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from django.db import transaction
from django.db.models import QuerySet

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


# Rows a retention prune deletes per statement, each statement its own transaction (``rows_pruned``).
PRUNE_CHUNK = 5000


def rows_pruned(rows: QuerySet[Any], *, oldest_first: str) -> int:
    """Delete ``rows`` (of a model deleted without cascade or signal: a plain DELETE), at most
    ``PRUNE_CHUNK`` a statement, the oldest by ``oldest_first`` (an indexed column of the prune's
    condition: each chunk reads only its own rows off that index, then deletes them by their keys),
    each DELETE its own transaction;
    returns how many. One DELETE of every row past a retention was an hour of a busy message log per
    run (millions of frames), and weeks of it once the retention was shortened or the beat had been
    away, in one transaction holding back every table's vacuum until it ended. Rows written meanwhile
    are newer than the cutoff: the chunks end."""
    deleted = 0
    while True:
        chunk = PRUNE_CHUNK
        oldest = list(rows.order_by(oldest_first).values_list("pk", flat=True)[:chunk])
        if oldest:
            # By their keys as values: ``pk IN (<the chunk's SELECT>)`` was planned as a hash join
            # over the whole table (a sequential scan per chunk).
            with transaction.atomic():
                deleted += rows.model._base_manager.filter(pk__in=oldest).delete()[0]
        if len(oldest) < chunk:
            return deleted
