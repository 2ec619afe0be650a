"""A ``TextChoices`` member is dumped by the dumpers psycopg finds for it through its MRO, found
at once (``csms.postgresql.base.choices_adapters``): the same parameters, less lookup per execute."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.models import Choices
from psycopg import adapters
from psycopg.adapt import AdaptersMap, PyFormat

from chargepoints.models import LifecycleState
from charging.models import TransactionStatus
from csms.postgresql.base import _text_choices, choices_adapters
from kernel.plain_sql import bound_cursor

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="psycopg's adapters"),
]


def _connection_adapters() -> AdaptersMap:
    connection.ensure_connection()
    return connection.connection.adapters


def test_a_text_choices_member_is_found_by_its_own_type():
    """psycopg's first lookup, ``_dumpers[format][type]``: before, a miss and a walk of the MRO."""
    dumpers = _connection_adapters()._dumpers[PyFormat.AUTO]
    assert TransactionStatus in dumpers and LifecycleState in dumpers


@pytest.mark.parametrize("fmt", list(PyFormat), ids=[fmt.name for fmt in PyFormat])
def test_every_text_choices_class_gets_the_dumper_its_mro_gave(fmt):
    classes = _text_choices(Choices)
    assert TransactionStatus in classes and LifecycleState in classes
    template = AdaptersMap(adapters)
    given = choices_adapters(template)
    assert {cls: given.get_dumper(cls, fmt) for cls in classes} == {
        cls: template.get_dumper(cls, fmt) for cls in classes
    }
    assert given._dumpers_by_oid == template._dumpers_by_oid  # the dumpers used by a type's oid unchanged


@pytest.mark.parametrize("placeholder", ["%s", "%t", "%b"])
def test_a_text_choices_member_is_sent_as_its_value(placeholder):
    with bound_cursor() as cursor:
        cursor.execute(
            f"SELECT {placeholder}::text, pg_typeof({placeholder}::text)::text", [TransactionStatus.ENDED] * 2
        )
        assert cursor.fetchone() == ("ended", "text")
