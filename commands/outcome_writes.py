"""A group-commit batch's answered commands completed together (issue 15, rounds 18 and 19).

The configuration read after a boot is completed by a unit of the gateway's commit group
(``services.command_complete``): the outcome's UPDATE, then the answer's store through its route
(a 1.6 GetConfiguration's keys; a 2.0.1 GetBaseReport's report tied to its command), each one
statement per charger: about two statements per charger's first connect, answered as chargers
answer it. A batch written without savepoints
completes ahead, before its units run, those of its commands answered by a CALLRESULT whose route
stores many answers at once (``routes.answers_together_of``): their outcomes by one
``UPDATE ... FROM unnest``, then their answers by one statement per action
(``outcomes_written_together``). Each unit takes what was written for it
(``outcome_written_taken``) and emits its ``command.completed`` event, as before (nothing when no
subscription wants it). A completion not written ahead (unanswered, invalid, one whose route has
no such store, one alone in its batch, one after another unit of its charger but a status) writes
its own way.

Only the first unit of its charger in the batch is written ahead, StatusNotifications aside (the
group commit chooses; a status reads no command and no configuration): another unit of that charger
before it (its Boot, which asks whether its configuration was read) must not see what the completion
writes, and a later one (a Boot in the same batch) sees it, as in order. What
is written and not taken is dropped once its unit ran (``outcome_write_dropped``), which then sends
the batch to its second pass, each unit its own way. PostgreSQL only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NamedTuple
from uuid import UUID

from django.utils import timezone

from commands import routes
from commands.models import Command, CommandState
from commands.outcomes import OUTCOME_FIELDS, outcome_applied
from commands.rpc import CallOutcome, Outcome
from kernel.plain_sql import gathered_rows_written, instance_updated
from kernel.rows_ahead import RowsAhead, UnitKind


class CompletionLookup(NamedTuple):
    """A completion a batch may write ahead: its charger (``charge_point_identity``), its command
    and what the charger answered (the unit's own objects)."""

    charge_point_id: str
    command: Command
    outcome: CallOutcome


def _completion_of(*, command: Command, outcome: CallOutcome) -> CompletionLookup | None:
    """A ``command_complete`` unit's lookup: for a CALLRESULT to a charger's command whose route
    stores many answers at once; None otherwise (the unit writes its own way)."""
    if outcome.outcome != Outcome.RESULT or not command.charge_point_id:
        return None
    if routes.answers_together_of(command) is None:
        return None
    return CompletionLookup(command.charge_point_identity, command, outcome)


_units: UnitKind[CompletionLookup] = UnitKind()
completion_lookup_of = _units.lookup_of  # a unit's ``CompletionLookup``, or None


def completion_unit_register(func: Callable[..., Any]) -> None:
    """``func``'s units complete a command (keyword arguments ``command`` and ``outcome``)."""
    _units.register(func, _completion_of)


_PENDING = ("state", CommandState.PENDING.value)
_written: RowsAhead[UUID, CompletionLookup] = RowsAhead()  # command id -> its completion written


@contextmanager
def outcomes_written_together(completions: Sequence[CompletionLookup]) -> Iterator[None]:
    """Within the block (a batch's pass without savepoints), the completions of ``completions``
    (CALLRESULTs: each answered, ``outcomes.ANSWERED_STATES``) are written now and answered
    (``outcome_written_taken``): their outcomes (``outcome_applied`` on each command, at the
    block's time) by one statement, their answers by one per action. Fewer than ``FEWEST``, or not
    PostgreSQL: nothing written, no answer."""
    with _written.kept() as written:
        asked = list({completion.command.pk: completion for completion in completions}.values())
        if _written.enough(asked):
            written.update(_completed(asked))
        yield


def _completed(asked: list[CompletionLookup]) -> dict[UUID, CompletionLookup]:
    now = timezone.now()
    for completion in asked:
        outcome_applied(completion.command, completion.outcome, completed_at=now)
        # guarded: a command completed meanwhile (the abandoned-commands sweep's Timeout) fails the
        # pass, and its unit writes nothing its own way (``services.command_complete``: the first stands)
        instance_updated(completion.command, OUTCOME_FIELDS, may_gather=True, guard=_PENDING)
    gathered_rows_written(Command)  # one UPDATE ... FROM unnest, now: the answers' rows refer to the commands
    handlers: dict[routes.AnswersHandler, list[Command]] = {}
    for completion in asked:
        handler = routes.answers_together_of(completion.command)
        assert handler is not None  # as the lookup found
        handlers.setdefault(handler, []).append(completion.command)
    for handler, commands in handlers.items():
        handler(commands)
    return {completion.command.pk: completion for completion in asked}


def outcome_written_taken(command: Command, outcome: CallOutcome) -> bool:
    """Whether ``command``'s completion with ``outcome`` was written ahead in this pass (taken: no
    other unit gets it); its fields then hold what was written."""
    return (
        _written.taken(command.pk, lambda written: written.command is command and written.outcome is outcome)
        is not None
    )


def outcome_write_dropped(lookup: CompletionLookup | None) -> bool:
    """Its unit ran: the completion written for it, if it was left, is no later unit's. True when one
    was left (written, not taken): the batch's pass must be written again, each unit its own way."""
    return _written.dropped(lookup.command.pk if lookup is not None else None) is not None
