"""An array parameter passed as one text literal (``kernel.plain_sql.array_text``) gives PostgreSQL
exactly the array psycopg's list dumper gave it: the same elements, types, NULLs, JSON, times and
text (quotes, backslashes, tabs, newlines, braces, the word NULL)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from functools import partial
from typing import Any

import pytest
from django.core.serializers.json import DjangoJSONEncoder
from django.db import DataError, connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone as django_timezone
from psycopg.types.json import Jsonb

from chargepoints.models import ChargePoint
from charging.models import Transaction, TransactionStatus
from kernel.plain_sql import array_text, bound_cursor, copies_gathered, instance_updated

pytestmark = pytest.mark.django_db

AT = datetime(2026, 12, 1, 19, 0, 5, 123456, tzinfo=timezone(timedelta(hours=2)))
TEXTS = [
    "plain",
    "",
    "NULL",
    "null",
    "with,comma",
    'quote"d',
    "back\\slash",
    'both\\"',
    "tab\there",
    "new\nline\r\n",
    "{braces}",
    "  lead and trail  ",
    "ünïcødé ✓",
    "\\N",
    None,
]
ARRAYS: list[tuple[str, list[Any]]] = [
    ("bigint", [1, None, -5, 2**62, 0]),
    ("int", [0, None, 7]),
    (
        "numeric",
        [
            Decimal("1234.500"),
            None,
            Decimal("-0.001"),
            Decimal("1E+3"),
            Decimal("NaN"),
            Decimal("sNaN"),
            Decimal("-Infinity"),
        ],
    ),
    ("numeric(20, 3)", [Decimal("1.23456"), Decimal("7")]),
    ("text", TEXTS),
    ("varchar", [TransactionStatus.ACTIVE, TransactionStatus.ENDED, None]),
    ("boolean", [True, False, None]),
    (
        "timestamptz",
        [
            AT,
            AT.astimezone(UTC),
            datetime(2026, 1, 2, 3, 4, tzinfo=timezone(timedelta(hours=-5, minutes=-30))),
            datetime(1, 1, 1, tzinfo=UTC),
            None,
        ],
    ),
    (
        "jsonb",
        [
            Jsonb({"a": 1, "t": 'x\ty\\z"q{}', "n": None, "u": "ü"}),
            Jsonb([1, "NULL", {}, []]),
            Jsonb("str"),
            Jsonb(None),
            Jsonb({"d": Decimal("1.50"), "at": AT}, dumps=partial(json.dumps, cls=DjangoJSONEncoder)),
            None,
        ],
    ),
]


def _read(cast: str, parameter: Any) -> list[tuple[Any, ...]]:
    """Each element of ``parameter`` cast to ``cast[]``, as PostgreSQL holds it: its text, its value
    (``repr``: a NaN equals no other)."""
    with bound_cursor() as cursor:
        cursor.execute(
            f"SELECT n, v::text, v FROM unnest(%s::{cast}[]) WITH ORDINALITY AS u(v, n) ORDER BY n", [parameter]
        )
        return [(n, text, repr(value)) for n, text, value in cursor.fetchall()]


@pytest.mark.parametrize(("cast", "values"), ARRAYS, ids=[cast for cast, _ in ARRAYS])
def test_an_arrays_text_gives_the_elements_psycopgs_list_gave(cast, values):
    literal = array_text(values)
    assert isinstance(literal, str)
    assert _read(cast, literal) == _read(cast, list(values))


def test_a_text_array_holds_every_character_as_given():
    assert [value for _, _, value in _read("text", array_text(TEXTS))] == [repr(text) for text in TEXTS]


@pytest.mark.parametrize("kept", [str, str.strip], ids=["unquoted", "unquoted, blanks stripped"])
def test_the_comparison_sees_an_array_written_without_quotes(kept):
    """The check above can fail: texts joined without quoting nor escaping are refused or read otherwise."""
    texts = [kept(text) for text in TEXTS if text is not None and not set(text) & set(',{}"')]
    right = _read("text", texts)
    try:
        wrong = _read("text", "{" + ",".join(texts) + "}")
    except DataError:
        return
    assert wrong != right


def test_a_naive_time_is_read_in_the_sessions_time_zone_as_before():
    naive = [datetime(2026, 6, 1, 12, 0)]
    with bound_cursor() as cursor:
        cursor.execute("SET LOCAL TimeZone = 'Asia/Kolkata'")
    assert _read("timestamptz", array_text(naive)) == _read("timestamptz", naive)


def test_an_element_of_another_type_leaves_the_list_to_psycopg():
    values = [uuid.UUID(int=1), None]
    assert array_text(values) == values


def test_a_nul_character_is_refused_as_before():
    for parameter in (["a\x00b"], array_text(["a\x00b"])):
        with pytest.raises((DataError, ValueError)), bound_cursor() as cursor:
            cursor.execute("SELECT %s::text[]", [parameter])


def _session(charge_point: ChargePoint, n: int) -> Transaction:
    return Transaction.objects.create(
        charge_point=charge_point, ocpp_version="2.0.1", start_key=f"k{n}", started_at=AT, meter_start_wh=Decimal("1")
    )


def test_a_gathered_update_sends_text_and_writes_what_one_update_writes():
    """Two sessions updated with the same values: one alone (one value per placeholder), one
    gathered (an ``UPDATE ... FROM unnest`` of array literals); their rows are the same."""
    charge_point = ChargePoint.objects.create(charge_point_id="CP-ARRAY", heartbeat_interval=60)
    alone, gathered = _session(charge_point, 1), _session(charge_point, 2)
    changed = ["stop_reason", "meter_stop_wh", "stopped_at", "anomalies", "seq_nos", "closed_by_csms", "idle_since"]
    for session in (alone, gathered):
        session.stop_reason = 'Local\t"Reason"\\\n{x},NULL'
        session.meter_stop_wh = Decimal("12345.6789")
        session.stopped_at = AT
        session.anomalies = ["a\tb", {"k": 'q"\\'}, None]
        session.seq_nos = [0, 1, 2]
        session.closed_by_csms = True
        session.idle_since = None
    instance_updated(alone, changed)
    with CaptureQueriesContext(connection) as queries, copies_gathered():
        instance_updated(gathered, changed, may_gather=True)
    (update,) = [query["sql"] for query in queries.captured_queries if "unnest" in query["sql"]]
    assert "ARRAY[" not in update  # the query log quotes a list as ARRAY[...], a literal as '{...}'
    columns = ["id", *changed, "updated_at"]
    rows = {row["id"]: row for row in Transaction.objects.filter(pk__in=[alone.pk, gathered.pk]).values(*columns)}
    first, second = rows[alone.pk], rows[gathered.pk]
    assert first["updated_at"] <= second["updated_at"] <= django_timezone.now()
    assert {k: v for k, v in first.items() if k not in ("id", "updated_at")} == {
        k: v for k, v in second.items() if k not in ("id", "updated_at")
    }
    assert second["stop_reason"] == 'Local\t"Reason"\\\n{x},NULL' and second["anomalies"] == [
        "a\tb",
        {"k": 'q"\\'},
        None,
    ]
