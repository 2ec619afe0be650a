"""What a start and a meter reading cost PostgreSQL in these tables (issue 15), indexes changed
without blocking the gateway's writes (``kernel.online_ddl``):

- meter samples: the transaction foreign key's own index goes (``(transaction, measurand,
  timestamp)`` leads with the same column); the parked stop's (``reconciliation_item``) becomes
  partial, on the few samples that have one;
- sessions: the charger foreign key's own index goes (``(charge_point, status)`` leads with the
  same column).
"""

import django.db.models.deletion
from django.db import migrations, models

from kernel import online_ddl

_SAMPLES = "chargepoints_metersample"
_SESSIONS = "chargepoints_transaction"


class Migration(migrations.Migration):
    atomic = False  # CREATE/DROP INDEX CONCURRENTLY run outside a transaction

    dependencies = [
        ("chargepoints", "0008_message_log_and_charger_write_cost"),
        ("charging", "0002_content_types_from_chargepoints_and_commands"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="metersample",
                    name="reconciliation_item",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        help_text="The parked stop it came in; attaching the stop moves it to the transaction.",
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="meter_samples",
                        to="charging.reconciliationitem",
                    ),
                ),
                migrations.AddIndex(
                    model_name="metersample",
                    index=models.Index(
                        condition=models.Q(("reconciliation_item__isnull", False)),
                        fields=["reconciliation_item"],
                        name="meter_sample_parked",
                    ),
                ),
                migrations.AlterField(
                    model_name="metersample",
                    name="transaction",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="meter_samples",
                        to="charging.transaction",
                    ),
                ),
                migrations.AlterField(
                    model_name="transaction",
                    name="charge_point",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="transactions",
                        to="chargepoints.chargepoint",
                    ),
                ),
            ],
            database_operations=[
                online_ddl.index_created(
                    "meter_sample_parked",
                    _SAMPLES,
                    '("reconciliation_item_id") WHERE "reconciliation_item_id" IS NOT NULL',
                ),
                online_ddl.index_dropped(
                    "chargepoints_metersample_reconciliation_item_id_28eac6c2", _SAMPLES, '("reconciliation_item_id")'
                ),
                online_ddl.index_dropped("chargepoints_metersample_transaction_id_22d9072b", _SAMPLES, '("transaction_id")'),
                online_ddl.index_dropped("chargepoints_transaction_charge_point_id_56781de6", _SESSIONS, '("charge_point_id")'),
            ],
        ),
    ]
