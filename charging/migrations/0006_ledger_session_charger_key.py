"""What a ledger row's foreign keys cost PostgreSQL (issue 15, round 22), changed without blocking
the gateway's writes (``kernel.online_ddl``).

A meter sample's two keys, to its session and to its charger, were checked by two locking reads a
row (PostgreSQL's RI triggers), of rows the same batch had just updated: about 7 µs of PostgreSQL's
CPU a row each. One key of the pair replaces them: ``(transaction_id, charge_point_id)`` references
the session's ``(id, charge_point_id)`` (a unique index on the sessions, ``session_charger``, its
target): a sample with a session belongs to it, and to its charger (the session's own key to the
charger keeps that one). Django's state cannot say a key of two columns, so its two fields say
``db_constraint=False`` and the key is added here, PostgreSQL only. Forwards: the index, the new
key (validated without blocking writes), then the two old keys dropped; backwards the reverse, so
the table is never without a check of its sessions.
"""

import django.db.models.deletion
from django.db import migrations, models

from kernel import online_ddl

_SESSIONS = "chargepoints_transaction"
_SAMPLES = "chargepoints_metersample"


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY runs outside a transaction

    dependencies = [
        ("chargepoints", "0011_connector_fillfactor"),
        ("charging", "0005_session_write_cost"),
    ]

    operations = [
        online_ddl.postgresql_only_unique_index_created("session_charger", _SESSIONS, '("id", "charge_point_id")'),
        online_ddl.postgresql_only_foreign_key_added(
            "meter_sample_session",
            _SAMPLES,
            f'("transaction_id", "charge_point_id") REFERENCES "{_SESSIONS}" ("id", "charge_point_id")',
        ),
        migrations.AlterField(
            model_name="metersample",
            name="charge_point",
            field=models.ForeignKey(
                db_constraint=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="meter_samples",
                to="chargepoints.chargepoint",
            ),
        ),
        migrations.AlterField(
            model_name="metersample",
            name="transaction",
            field=models.ForeignKey(
                blank=True,
                db_constraint=False,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="meter_samples",
                to="charging.transaction",
            ),
        ),
    ]
