"""A 2.0.1 NotifyReport part stored by one statement, and a group-commit batch's parts by one (issue 15, round 18).

A NotifyReport part (2.0.1 part 2 B07/B08: ``services.device_model_report_record``) was five
statements through the ORM: the charger read, its report's row locked (or made), its variables
upserted, their attributes upserted, the report's row saved. On PostgreSQL it is now one statement
(``report_parts_stored``): the report's row upserted by its unique (charger, requestId), the part
counted once per seqNo, the report complete once every part from seqNo 0 up to its last (tbc false)
arrived; the part's variables upserted by their identity, and their attributes by (variable, type),
learned from NotifyReport with the report's requestId and command; the report's row returned. An
unknown charger: no row (the caller raises ``ChargePoint.DoesNotExist``).

A fleet's 2.0.1 charger sends one after its first boot (the configuration read after a boot,
GetBaseReport FullInventory). A batch written without savepoints stores those that are the first
unit of their charger in the batch ahead, all by the same one statement
(``reports_stored_together``); each unit then takes its report's row (``report_stored_taken``). A
part stored ahead and not taken is dropped once its unit ran (``report_store_dropped``), which sends
the batch to its second pass: nothing is committed that its unit did not store.

The report a GetBaseReport (or GetReport) answered Accepted is tied to its command by its
answer's route (``services.device_model_report_expect``): one upsert of the report's row
(``reports_tied``), which ties many at once for a group-commit batch's answers written ahead with
its other completions (``commands.outcome_writes``, the route's ``@answers_together`` handler).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from django.conf import settings
from django.db import connection
from django.db.models import Field, Model
from django.utils import timezone

from chargepoints.models import ChargePoint
from chargepoints.services.heartbeat_pace import heartbeat_intervals_reported
from chargepoints.services.rate_units import charging_rate_units_reported
from commands.models import Command
from configuration.models import (
    ATTRIBUTE_DEFAULTS,
    AttributeType,
    DeviceModelAttribute,
    DeviceModelReport,
    DeviceModelVariable,
    LearnedFrom,
)
from kernel.plain_sql import array_text, bound_cursor, column_of, columns_of, instance_of
from kernel.rows_ahead import RowsAhead, UnitKind


class ReportPart(NamedTuple):
    """A NotifyReport part as ``device_model_report_record``'s keyword arguments (snake_case
    ``report_data``: ReportDataType items)."""

    charge_point_id: str
    request_id: int
    seq_no: int
    tbc: bool
    generated_at: datetime | None
    report_data: list[dict[str, Any]]


def variable_identity(component: dict[str, Any], variable: dict[str, Any]) -> tuple[Any, ...]:
    """(component name, component instance, evse id, connector id, variable name, variable instance)."""
    evse = component.get("evse") or {}
    return (
        component["name"],
        component.get("instance", ""),
        evse.get("id"),
        evse.get("connector_id"),
        variable["name"],
        variable.get("instance", ""),
    )


# ``variable_identity`` of the heartbeat interval (OCPPCommCtrlr.HeartbeatInterval, names case-folded:
# no instance, EVSE or connector), s.
HEARTBEAT_INTERVAL_VARIABLE = ("ocppcommctrlr", "", None, None, "heartbeatinterval", "")


def is_heartbeat_interval(key: tuple[Any, ...]) -> bool:
    """Whether a ``variable_identity`` is the heartbeat interval's (names in any case)."""
    component, instance, evse, connector, variable, variable_instance = key
    folded = (str(component).casefold(), instance, evse, connector, str(variable).casefold(), variable_instance)
    return folded == HEARTBEAT_INTERVAL_VARIABLE


def reported_heartbeat_interval(report_data: Sequence[dict[str, Any]]) -> str | None:
    """The Actual value of ``OCPPCommCtrlr.HeartbeatInterval`` among a report's items (ReportDataType,
    snake_case; the last given), None when they give none: the interval the charger heartbeats at."""
    return _reported_actual(report_data, is_heartbeat_interval)


def _reported_actual(report_data: Sequence[dict[str, Any]], is_wanted: Callable[[tuple[Any, ...]], bool]) -> str | None:
    """The Actual value (the last given) of the variable ``is_wanted`` names among a report's items."""
    reported = None
    for item in report_data:
        if not is_wanted(variable_identity(item["component"], item["variable"])):
            continue
        for attribute in item["variable_attribute"]:
            value = attribute.get("value")
            if attribute.get("type", AttributeType.ACTUAL) == AttributeType.ACTUAL and isinstance(value, str):
                reported = value
    return reported


# The 2.0.1 variable of the units a station takes a charging profile's limit in (names case-folded).
RATE_UNIT_VARIABLE = ("smartchargingctrlr", "rateunit")


def is_rate_unit(key: tuple[Any, ...]) -> bool:
    """Whether a ``variable_identity`` is ``SmartChargingCtrlr.RateUnit``'s (names in any case)."""
    return (str(key[0]).casefold(), str(key[4]).casefold()) == RATE_UNIT_VARIABLE


def reported_rate_unit(report_data: Sequence[dict[str, Any]]) -> str | None:
    """The Actual value of ``SmartChargingCtrlr.RateUnit`` among a report's items (the last given),
    None when they give none."""
    return _reported_actual(report_data, is_rate_unit)


def pending_kept(
    pending: str | None, learned_at: datetime, read: str | None, last_boot_at: datetime | None
) -> str | None:
    """The ``pending_value`` a read (GetConfiguration, NotifyReport, GetVariables) leaves a row that
    had ``pending`` (a change answered RebootRequired) since ``learned_at``: kept while the charger has
    not booted since (``last_boot_at``: only a restart moves it) and the read gives another value (the
    charger takes the change at its next boot, and a read before it gives the value it runs with);
    settled (None) by a read after that boot, or one giving the pending value. ``pending_kept_sql``
    in SQL."""
    if pending is None or pending == read:
        return None
    return pending if last_boot_at is None or learned_at >= last_boot_at else None


def pending_kept_sql(row: str, read: str, charger: str, *, settled: str = "false") -> str:
    """``pending_kept`` as SQL: ``row`` the stored row's alias (its ``pending_value``, ``learned_at``),
    ``read`` the value read, ``charger`` the SQL of its charger's id; ``settled``: SQL true when the
    read settles it anyway (a 1.6 key the charger says it does not know)."""
    return (
        f"CASE WHEN {row}.pending_value IS NULL OR {settled} OR {row}.pending_value = {read} THEN NULL"
        f" WHEN {row}.learned_at >= coalesce((SELECT b.last_boot_at FROM {_CHARGERS} b WHERE b.id = {charger}),"
        f" '-infinity') THEN {row}.pending_value END"
    )


def identity_digest(key: tuple[Any, ...]) -> str:
    """``DeviceModelVariable.identity``: SHA-256 of a ``variable_identity`` tuple."""
    return hashlib.sha256(json.dumps(key).encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class ReportStored:
    """A part stored ahead: what it asked (to be taken only by the same ask) and its report's row."""

    part: ReportPart
    report: DeviceModelReport


_units: UnitKind[ReportPart] = UnitKind(ReportPart)
report_unit_register = _units.register  # ``func``'s units store a NotifyReport part: their arguments a ``ReportPart``'s
report_lookup_of = _units.lookup_of
_stored: RowsAhead[str, ReportStored] = RowsAhead()  # charger id -> its part stored


@contextmanager
def reports_stored_together(parts: Sequence[ReportPart]) -> Iterator[None]:
    """Within the block (a batch's pass without savepoints), each of ``parts`` (the first of its
    charger) is stored now (one statement) and answered (``report_stored_taken``). Fewer than
    ``FEWEST``, or not PostgreSQL: no statement, no answer."""
    with _stored.kept() as stored:
        asks = list({part.charge_point_id: part for part in reversed(parts)}.values())[::-1]  # the first of each
        if _stored.enough(asks):
            rows = report_parts_stored(asks, malformed_left=True)
            stored.update(
                {
                    part.charge_point_id: ReportStored(part, rows[part.charge_point_id])
                    for part in asks
                    if part.charge_point_id in rows
                }
            )
        yield


def report_stored_taken(part: ReportPart) -> DeviceModelReport | None:
    """The report's row as ``part`` was stored ahead in this pass (taken: no other unit gets it),
    or None: the unit stores its own way."""
    stored = _stored.taken(part.charge_point_id, lambda row: row.part == part)
    return stored.report if stored is not None else None


def report_stored_ahead(charge_point_id: str) -> bool:
    """Whether a part of the charger was stored ahead in this pass and is not taken yet."""
    return charge_point_id in _stored.left()


def report_store_dropped(part: ReportPart | None) -> bool:
    """Its unit ran: what was stored for its charger, if it was left, is no later unit's. True when
    it was left: a part is stored that no unit took, so the batch's pass must be written again."""
    return part is not None and _stored.dropped(part.charge_point_id) is not None


class _Rows(NamedTuple):
    """The arrays of one statement: its parts, their variables and their attributes."""

    parts: list[ReportPart]
    variables: dict[tuple[str, str], list[Any]]  # (charger, identity) -> the variable's columns
    attributes: dict[tuple[str, str, str], list[Any]]  # (charger, identity, type) -> the attribute's


def _rows_of(parts: Sequence[ReportPart], *, malformed_left: bool) -> _Rows:
    """What ``parts`` write, as ``device_model_attributes_record`` makes it of a report: one
    attribute per variableAttribute (the last of a variable and type wins), one variable per
    variable named by an attribute, its characteristics the last given (none given: the stored
    ones stay, as the statement's upsert keeps them). A part whose items lack what
    the schema requires raises, or with ``malformed_left`` is left out (its unit stores its own
    way and raises)."""
    rows = _Rows([], {}, {})
    for part in parts:
        try:
            variables, attributes = _part_rows(part)
        except (AttributeError, KeyError, TypeError):
            if not malformed_left:
                raise
            continue
        rows.parts.append(part)
        rows.variables.update(variables)
        rows.attributes.update(attributes)
    return rows


def _part_rows(
    part: ReportPart,
) -> tuple[dict[tuple[str, str], list[Any]], dict[tuple[str, str, str], list[Any]]]:
    variables: dict[tuple[str, str], list[Any]] = {}
    attributes: dict[tuple[str, str, str], list[Any]] = {}
    for item in part.report_data:
        key = variable_identity(item["component"], item["variable"])
        identity = identity_digest(key)
        characteristics = item.get("variable_characteristics")
        for attribute in item["variable_attribute"]:
            known = variables.get((part.charge_point_id, identity))
            kept = characteristics or (known[-1] if known is not None else None)
            variables[(part.charge_point_id, identity)] = [part.charge_point_id, *key, identity, kept]
            kind = attribute.get("type", AttributeType.ACTUAL)
            attributes[(part.charge_point_id, identity, kind)] = [
                part.charge_point_id,
                identity,
                kind,
                attribute.get("value"),
                attribute.get("mutability", ATTRIBUTE_DEFAULTS["mutability"]),
                attribute.get("persistent", ATTRIBUTE_DEFAULTS["persistent"]),
                attribute.get("constant", ATTRIBUTE_DEFAULTS["constant"]),
            ]
    return variables, attributes


def _quoted(model: type[Model], *attnames: str) -> str:
    """The quoted columns of ``model``'s fields ``attnames``, comma-separated."""
    return ", ".join(_column(model, name) for name in attnames)


def _column(model: type[Model], name: str) -> str:
    field = model._meta.get_field(name)
    assert isinstance(field, Field)
    return connection.ops.quote_name(column_of(field))


_REPORTS = connection.ops.quote_name(DeviceModelReport._meta.db_table)
_VARIABLES = connection.ops.quote_name(DeviceModelVariable._meta.db_table)
_ATTRIBUTES = connection.ops.quote_name(DeviceModelAttribute._meta.db_table)
_CHARGERS = connection.ops.quote_name(ChargePoint._meta.db_table)
_COMMANDS = connection.ops.quote_name(Command._meta.db_table)
_VARIABLE_COLUMNS = (
    "component_name",
    "component_instance",
    "evse_id",
    "connector_id",
    "variable_name",
    "variable_instance",
    "identity",
)
# What a reported attribute's upsert sets (``device_model_attributes_record``'s, a report's mutability and flags;
# a value sent unanswered is settled by the read: ``unconfirmed_value`` cleared).
_ATTRIBUTE_SET = (
    "value",
    "pending_value",
    "learned_from",
    "report_request_id",
    "command",
    "learned_at",
    "mutability",
    "persistent",
    "constant",
    "unconfirmed_value",
)
_ATTRIBUTE_SET_COLUMNS = [_column(DeviceModelAttribute, name) for name in _ATTRIBUTE_SET]

# The highest requestId (OCPP's integer, the column's and the API's 32 bits).
REQUEST_ID_MAX = 2**31 - 1


def request_id_next_sql(charger: str) -> str:
    """SQL of the requestId a report the CSMS asks the charger of row id ``charger`` (a column or
    an expression) for gets (``services.request_id_next``): the one after the highest its reports
    used, at least 1; once that is ``REQUEST_ID_MAX`` (an integrator's GetBaseReport, a charger's
    own NotifyReport), the lowest above 0 none of them uses."""
    return (
        f"COALESCE((SELECT GREATEST(MAX(r.request_id), 0) + 1 FROM {_REPORTS} r WHERE r.charge_point_id = {charger}"
        f" HAVING MAX(r.request_id) < {REQUEST_ID_MAX}),"
        f" (SELECT MIN(free.n) FROM (SELECT 1 AS n UNION ALL SELECT r.request_id + 1 FROM {_REPORTS} r"
        f" WHERE r.charge_point_id = {charger} AND r.request_id BETWEEN 0 AND {REQUEST_ID_MAX - 1}) free"
        f" WHERE NOT EXISTS (SELECT 1 FROM {_REPORTS} u"
        f" WHERE u.charge_point_id = {charger} AND u.request_id = free.n)))"
    )


# A reported attribute's pending value (``pending_kept_sql``): its charger is its variable's.
_ATTRIBUTE_PENDING_KEPT = pending_kept_sql(
    "a", "EXCLUDED.value", f"(SELECT w.charge_point_id FROM {_VARIABLES} w WHERE w.id = a.variable_id)"
)

# Whether a report's parts, this one's added, are every one from seqNo 0 up to its last (the part
# with tbc false): a part the charger lost leaves the report incomplete (OCPP 2.0.1 B07: seqNo
# counts the parts from 0).
_LAST_SEQ_NO = "coalesce(EXCLUDED.last_seq_no, r.last_seq_no)"
_EVERY_PART = (
    f"coalesce({_LAST_SEQ_NO} >= 0 AND (SELECT count(DISTINCT received.n::integer) - 1"
    " FROM jsonb_array_elements_text(r.seq_nos || EXCLUDED.seq_nos) AS received(n)"
    f" WHERE received.n::integer BETWEEN 0 AND {_LAST_SEQ_NO}) = {_LAST_SEQ_NO}, false)"
)  # the count less one, not the last seqNo plus one: seqNo 2147483647 fits an integer

# Per part: its charger (its row's id), its report's row upserted by (charger, requestId), the part
# counted once per seqNo, complete once every part up to its last arrived; then its variables and
# their attributes upserted; the report's rows returned (the model's columns), each with its charger's id.
_STATEMENT = (
    "WITH part AS (SELECT *, %s::timestamptz AS now, %s::text AS learned_from"
    " FROM unnest(%s::text[], %s::integer[], %s::integer[], %s::boolean[], %s::timestamptz[], %s::integer[])"
    " AS part(charge_point_id, request_id, seq_no, tbc, generated_at, items)),"
    f" cp AS (SELECT c.id, part.* FROM {_CHARGERS} c JOIN part ON c.charge_point_id = part.charge_point_id),"
    f" report AS (INSERT INTO {_REPORTS} AS r (charge_point_id, request_id, parts_received, seq_nos,"
    " variables_reported, last_seq_no, complete, generated_at, started_at, completed_at)"
    " SELECT cp.id, cp.request_id, 1, jsonb_build_array(cp.seq_no), cp.items,"
    " CASE WHEN cp.tbc THEN NULL ELSE cp.seq_no END, NOT cp.tbc AND cp.seq_no = 0, cp.generated_at,"
    " cp.now, CASE WHEN cp.tbc OR cp.seq_no <> 0 THEN NULL ELSE cp.now END FROM cp ORDER BY cp.id"
    " ON CONFLICT (charge_point_id, request_id) DO UPDATE SET"
    " parts_received = r.parts_received + CASE WHEN r.seq_nos @> EXCLUDED.seq_nos THEN 0 ELSE 1 END,"
    " variables_reported = r.variables_reported"
    " + CASE WHEN r.seq_nos @> EXCLUDED.seq_nos THEN 0 ELSE EXCLUDED.variables_reported END,"
    " seq_nos = CASE WHEN r.seq_nos @> EXCLUDED.seq_nos THEN r.seq_nos ELSE r.seq_nos || EXCLUDED.seq_nos END,"
    " generated_at = EXCLUDED.generated_at, last_seq_no = coalesce(EXCLUDED.last_seq_no, r.last_seq_no),"
    f" complete = r.complete OR {_EVERY_PART},"
    f" completed_at = CASE WHEN r.complete THEN r.completed_at WHEN {_EVERY_PART} THEN EXCLUDED.started_at END"  # now
    f" RETURNING {columns_of(DeviceModelReport, 'r')}),"
    # The part's variables, each known (stored) or new; the new ones in the order given, counted on
    # from the charger's stored ones: past CSMS_MAX_DEVICE_MODEL_VARIABLES they are left out.
    " named AS (SELECT x.*, cp.id AS charger, cp.now, EXISTS (SELECT 1 FROM"
    f" {_VARIABLES} k WHERE k.charge_point_id = cp.id AND k.identity = x.identity) AS known"
    " FROM unnest(%s::text[], %s::text[], %s::text[], %s::integer[], %s::integer[], %s::text[], %s::text[],"
    " %s::text[], %s::text[]) WITH ORDINALITY AS x(charge_point_id, component_name, component_instance, evse_id,"
    " connector_id, variable_name, variable_instance, identity, characteristics, ord)"
    " JOIN cp ON cp.charge_point_id = x.charge_point_id),"
    f" held AS (SELECT cp.id, (SELECT count(*) FROM {_VARIABLES} h WHERE h.charge_point_id = cp.id) AS n FROM cp),"
    " counted AS (SELECT named.*, held.n"
    " + count(*) FILTER (WHERE NOT named.known) OVER (PARTITION BY named.charger ORDER BY named.ord) AS reach"
    " FROM named JOIN held ON held.id = named.charger),"
    f" variable AS (INSERT INTO {_VARIABLES} AS v (charge_point_id, {_quoted(DeviceModelVariable, *_VARIABLE_COLUMNS)},"
    " characteristics, learned_at)"
    " SELECT x.charger, x.component_name, x.component_instance, x.evse_id, x.connector_id, x.variable_name,"
    " x.variable_instance, x.identity, x.characteristics::jsonb, x.now"
    " FROM counted x WHERE x.known OR x.reach <= %s ORDER BY x.charger, x.identity"
    " ON CONFLICT (charge_point_id, identity) DO UPDATE SET"
    " characteristics = coalesce(EXCLUDED.characteristics, v.characteristics),"
    " learned_at = EXCLUDED.learned_at RETURNING v.id, v.charge_point_id, v.identity),"
    f" attribute AS (INSERT INTO {_ATTRIBUTES} AS a (variable_id, {_quoted(DeviceModelAttribute, 'type')},"
    f" {', '.join(_ATTRIBUTE_SET_COLUMNS)})"
    " SELECT variable.id, y.type, y.value, NULL, cp.learned_from, report.request_id, report.command_id,"
    " cp.now, y.mutability, y.persistent, y.constant, NULL"
    " FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::boolean[], %s::boolean[])"
    " AS y(charge_point_id, identity, type, value, mutability, persistent, constant)"
    " JOIN cp ON cp.charge_point_id = y.charge_point_id"
    " JOIN variable ON variable.charge_point_id = cp.id AND variable.identity = y.identity"
    " JOIN report ON report.charge_point_id = cp.id ORDER BY variable.id, y.type"
    f" ON CONFLICT (variable_id, {_quoted(DeviceModelAttribute, 'type')}) DO UPDATE SET "
    + ", ".join(
        f"{column} = {_ATTRIBUTE_PENDING_KEPT if name == 'pending_value' else f'EXCLUDED.{column}'}"
        for name, column in zip(_ATTRIBUTE_SET, _ATTRIBUTE_SET_COLUMNS, strict=True)
    )
    + " RETURNING 1),"
    # A FullInventory report the CSMS asked for, completed by this part, is the whole device model:
    # the charger's variables it did not report (learned before it started, not among this part's)
    # go, with their attributes.
    f" stale AS (SELECT v.id FROM {_VARIABLES} v JOIN report ON report.charge_point_id = v.charge_point_id"
    f" JOIN cp ON cp.id = report.charge_point_id JOIN {_COMMANDS} c ON c.id = report.command_id"
    " WHERE report.complete AND report.completed_at = cp.now AND v.learned_at < report.started_at"
    " AND c.request ->> 'report_base' = 'FullInventory'"
    " AND NOT EXISTS (SELECT 1 FROM variable WHERE variable.id = v.id)),"
    f" stale_attribute AS (DELETE FROM {_ATTRIBUTES} a USING stale WHERE a.variable_id = stale.id RETURNING 1),"
    f" stale_variable AS (DELETE FROM {_VARIABLES} v USING stale WHERE v.id = stale.id RETURNING 1)"
    " SELECT report.*, cp.charge_point_id FROM report JOIN cp ON cp.id = report.charge_point_id"
)


def report_parts_stored(parts: Sequence[ReportPart], *, malformed_left: bool = False) -> dict[str, DeviceModelReport]:
    """Store ``parts`` (at most one per charger) by one statement (PostgreSQL, in the caller's
    transaction): charger id -> its report's row as written; a part of an unknown charger is not
    among them. A part whose items lack what the schema requires (a ``KeyError``...) raises, or
    with ``malformed_left`` is not among them either."""
    rows = _rows_of(parts, malformed_left=malformed_left)
    if not rows.parts:
        return {}
    variables = [[*row[:-1], json.dumps(row[-1]) if row[-1] is not None else None] for row in rows.variables.values()]
    reported = [
        (p.charge_point_id, p.request_id, p.seq_no, p.tbc, p.generated_at, len(p.report_data)) for p in rows.parts
    ]
    params: list[Any] = [timezone.now(), LearnedFrom.NOTIFY_REPORT.value]
    for table, width in ((reported, 6), (variables, 9)):
        params += [array_text(column) for column in _columns(table, width)]
    params.append(settings.CSMS_MAX_DEVICE_MODEL_VARIABLES)
    params += [array_text(column) for column in _columns(list(rows.attributes.values()), 7)]
    with bound_cursor() as cursor:
        cursor.execute(_STATEMENT, params)
        found = cursor.fetchall()
    stored = {row[-1]: instance_of(DeviceModelReport, row[:-1]) for row in found}
    intervals = {part.charge_point_id: reported_heartbeat_interval(part.report_data) for part in rows.parts}
    heartbeat_intervals_reported(
        reported={
            report.charge_point_id: interval
            for charge_point_id, report in stored.items()
            if (interval := intervals.get(charge_point_id)) is not None
        }
    )
    units = {part.charge_point_id: reported_rate_unit(part.report_data) for part in rows.parts}
    charging_rate_units_reported(
        reported={
            report.charge_point_id: unit
            for charge_point_id, report in stored.items()
            if (unit := units.get(charge_point_id)) is not None
        }
    )
    return stored


def _columns(rows: Sequence[Sequence[Any]], width: int) -> list[list[Any]]:
    """``rows`` (each ``width`` values) as one list per column."""
    return [[row[index] for row in rows] for index in range(width)]


class ReportTie(NamedTuple):
    """A report asked for and accepted, to tie to its command: its charger's row id, its requestId,
    the command (its id; None: none)."""

    charge_point_pk: int
    request_id: int
    command_id: uuid.UUID | None


def reports_tied(ties: Sequence[ReportTie]) -> None:
    """Tie each report of ``ties`` to its command by one statement (PostgreSQL, in the caller's
    transaction), its row made where it is missing; a report named twice ends as tied last. A
    FullInventory report its parts completed before the tie drops the variables it left out (``_TIED``)."""
    last = list({(tie.charge_point_pk, tie.request_id): tie for tie in ties}.values())
    if not last:
        return
    with bound_cursor() as cursor:
        cursor.execute(
            _TIED,
            [
                timezone.now(),
                array_text([tie.charge_point_pk for tie in last]),
                array_text([tie.request_id for tie in last]),
                array_text([str(tie.command_id) if tie.command_id is not None else None for tie in last]),
            ],
        )


# ``services.device_model_report_expect``'s upsert, for many reports (the row made if it is not there).
# A FullInventory report complete before its answer tied it (the station sent its parts before it
# answered, or its answer's write came after theirs: the part that completed it knew of no request)
# is the whole device model all the same: the charger's variables learned before it started go, with
# their attributes, as ``_STATEMENT``'s ``stale`` deletes them when the tie came first. Never one the
# report itself named (an attribute of its request id): ``started_at`` is the clock of the process
# that asked for the report, ``learned_at`` the gateway's, moments apart.
_TIED = (
    f"WITH tied AS (INSERT INTO {_REPORTS} AS r (charge_point_id, request_id, command_id, parts_received, seq_nos,"
    " variables_reported, complete, started_at)"
    " SELECT t.charge_point_id, t.request_id, t.command_id, 0, '[]', 0, false, %s"
    " FROM unnest(%s::bigint[], %s::integer[], %s::uuid[]) AS t(charge_point_id, request_id, command_id)"
    " ORDER BY 1, 2 ON CONFLICT (charge_point_id, request_id) DO UPDATE SET command_id = EXCLUDED.command_id"
    " RETURNING r.charge_point_id, r.request_id, r.command_id, r.complete, r.started_at),"
    f" stale AS (SELECT v.id FROM {_VARIABLES} v JOIN tied ON tied.charge_point_id = v.charge_point_id"
    f" JOIN {_COMMANDS} c ON c.id = tied.command_id WHERE tied.complete AND v.learned_at < tied.started_at"
    " AND c.request ->> 'report_base' = 'FullInventory'"
    f" AND NOT EXISTS (SELECT 1 FROM {_ATTRIBUTES} a WHERE a.variable_id = v.id"
    " AND a.report_request_id = tied.request_id)),"
    f" stale_attribute AS (DELETE FROM {_ATTRIBUTES} a USING stale WHERE a.variable_id = stale.id RETURNING 1)"
    f" DELETE FROM {_VARIABLES} v USING stale WHERE v.id = stale.id"
)
