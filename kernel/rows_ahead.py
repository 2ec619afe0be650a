"""Rows a group-commit batch writes or reads ahead of its units, one kind of unit at a time (issue 15).

A batch written without savepoints (``ocpp_gateway.group_commit``) makes, before its units run, one
statement for all its units of one kind (its statuses, boots, attaches, starts, stops, reads after
a boot) instead of one per unit; each unit then takes what was made for it. Every kind has the
same shape, kept here; its module keeps only its SQL and how its rows map to its units:

- ``UnitKind``: the functions whose units are of the kind, each with how the unit's keyword
  arguments make its lookup (None: the unit goes its own way);
- ``RowsAhead``: this thread's rows of the kind for one pass (lookup -> row, none outside a
  pass), made only for ``fewest`` asks or more (``enough``), on PostgreSQL; a row is taken by one unit at most,
  and the row its unit left is dropped once that unit ran (``dropped`` returns it: a row written
  that no unit took sends the batch to its second pass, each unit in its savepoint);
- ``asked_rows``: the asks a batch may write together, one per charger, all asking one condition.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Iterable, Iterator, Sized
from contextlib import contextmanager
from typing import Any, Generic, Protocol, TypeVar

from django.db import connection

Lookup = TypeVar("Lookup")
Key = TypeVar("Key", bound=Hashable)
Row = TypeVar("Row")

# Rows made ahead only from this many asks in a batch: one alone is one statement its own way,
# where ahead it would take one or two.
FEWEST = 2


class UnitKind(Generic[Lookup]):
    """The functions whose units are of one kind: ``func`` -> ``lookup_of(**the unit's keyword
    arguments)``, or ``default(**...)`` for those registered without one."""

    def __init__(self, default: Callable[..., Lookup | None] | None = None) -> None:
        self._default = default
        self._lookups: dict[Callable[..., Any], Callable[..., Lookup | None]] = {}
        self._made_by_default: set[Callable[..., Any]] = set()

    def register(self, func: Callable[..., Any], lookup_of: Callable[..., Lookup | None] | None = None) -> None:
        """``func``'s units are of this kind: ``lookup_of`` (or the kind's default) says which lookup."""
        made = lookup_of or self._default
        if made is None:
            raise TypeError("a lookup is needed for a kind without a default")
        self._lookups[func] = made
        if lookup_of is None:
            self._made_by_default.add(func)

    def lookup_of(self, func: Callable[..., Any], kwargs: dict[str, Any]) -> Lookup | None:
        """The lookup of a unit ``func(**kwargs)``, if it is of this kind; None for arguments it
        cannot make one of (the unit goes its own way): the kind's default refuses them with
        ``TypeError`` (other arguments than its own), a lookup registered for ``func`` with any of
        ``AttributeError``, ``KeyError``, ``TypeError``, ``ValueError`` (it reads into them)."""
        made = self._lookups.get(func)
        if made is None:
            return None
        refused = (TypeError,) if func in self._made_by_default else _LOOKUP_REFUSALS
        try:
            return made(**kwargs)
        except refused:
            return None


_LOOKUP_REFUSALS = (AttributeError, KeyError, TypeError, ValueError)


class RowsAhead(Generic[Key, Row]):
    """This thread's rows of one kind for a batch's pass (``kept``): key -> row."""

    def __init__(self, *, fewest: int = FEWEST) -> None:
        self.fewest = fewest
        self._local = threading.local()  # .rows: key -> row during a pass, None outside one

    def enough(self, asks: Sized) -> bool:
        """Whether rows are made ahead for ``asks``: ``fewest`` of them or more, on PostgreSQL."""
        return len(asks) >= self.fewest and connection.vendor == "postgresql"

    @contextmanager
    def kept(self) -> Iterator[dict[Key, Row]]:
        """Within the block, the pass's rows: the dict yielded, which the caller fills."""
        rows: dict[Key, Row] = {}
        self._local.rows = rows
        try:
            yield rows
        finally:
            self._local.rows = None

    def left(self) -> dict[Key, Row]:
        """The pass's rows not taken yet (read, not taken); empty outside a pass."""
        rows: dict[Key, Row] | None = getattr(self._local, "rows", None)
        return rows or {}

    def taken(self, key: Key | None, fits: Callable[[Row], bool] | None = None) -> Row | None:
        """The row made for ``key`` in this pass (taken: no other unit gets it), when ``fits`` it
        (a row made for another ask is left); else None."""
        rows: dict[Key, Row] | None = getattr(self._local, "rows", None)
        if not rows or key is None:
            return None
        if fits is not None:
            row = rows.get(key)
            if row is None or not fits(row):
                return None
        return rows.pop(key, None)

    def dropped(self, key: Key | None) -> Row | None:
        """Its unit ran: the row made for ``key``, if it was left, is no later unit's; returned
        (None: none was left)."""
        rows: dict[Key, Row] | None = getattr(self._local, "rows", None)
        if not rows or key is None:
            return None
        return rows.pop(key, None)


class _Ask(Protocol):
    @property
    def charge_point_id(self) -> str: ...

    @property
    def condition(self) -> Any: ...


Ask = TypeVar("Ask", bound=_Ask)


def asked_rows(asks: Iterable[Ask]) -> list[Ask]:
    """The asks a batch may write ahead, in order: one per charger, all asking the first one's
    ``condition`` (any other writes its own way)."""
    kept: list[Ask] = []
    seen: set[str] = set()
    for ask in asks:
        if ask.charge_point_id in seen or (kept and ask.condition != kept[0].condition):
            continue
        seen.add(ask.charge_point_id)
        kept.append(ask)
    return kept
