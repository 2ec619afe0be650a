"""What a message costs PostgreSQL in these tables (issue 15), indexes changed without blocking
the gateway's writes (``kernel.online_ddl``):

- the OCPP log: the foreign key's own index goes (``(charge_point, -created_at)`` leads with the
  same column) and so does ``unique_id``'s ``varchar_pattern_ops`` twin (the log is matched by an
  exact unique id only); ``unique_id``'s index stays, renamed as the model's ``Meta`` names it;
- the chargers: the ``(connected, last_seen)`` index goes, so that writing ``last_seen`` (every
  message locks its charger's row that way) writes no index entry, and the table's fillfactor
  leaves room on each page for those updates to stay on it (HOT).
"""

import django.db.models.deletion
from django.db import migrations, models

from kernel import online_ddl

_LOG = "chargepoints_ocppmessage"


class Migration(migrations.Migration):
    atomic = False  # CREATE/DROP INDEX CONCURRENTLY run outside a transaction

    dependencies = [
        ("chargepoints", "0007_handshake_started_at"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveIndex(model_name="chargepoint", name="chargepoint_connect_f7882c_idx"),
            ],
            database_operations=[
                online_ddl.index_dropped(
                    "chargepoint_connect_f7882c_idx", "chargepoints_chargepoint", '("connected", "last_seen")'
                ),
                online_ddl.fillfactor_set("chargepoints_chargepoint", 70),
            ],
        ),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="ocppmessage",
                    name="charge_point",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="messages",
                        to="chargepoints.chargepoint",
                    ),
                ),
                migrations.AlterField(
                    model_name="ocppmessage",
                    name="unique_id",
                    field=models.CharField(blank=True, max_length=64),
                ),
                migrations.AddIndex(
                    model_name="ocppmessage",
                    index=models.Index(fields=["unique_id"], name="ocpp_message_unique_id"),
                ),
            ],
            database_operations=[
                online_ddl.index_dropped("chargepoints_ocppmessage_charge_point_id_560ad169", _LOG, '("charge_point_id")'),
                online_ddl.postgresql_only_index_dropped(
                    "chargepoints_ocppmessage_unique_id_73615cc7_like", _LOG, '("unique_id" varchar_pattern_ops)'
                ),
                online_ddl.index_renamed(
                    "chargepoints_ocppmessage_unique_id_73615cc7", "ocpp_message_unique_id", _LOG, '("unique_id")'
                ),
            ],
        ),
    ]
