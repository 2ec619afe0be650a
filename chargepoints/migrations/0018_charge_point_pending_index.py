"""Auto-registration's cap (``CSMS_AUTO_REGISTER_MAX_PENDING``) counts the chargers waiting for
commissioning at every handshake of an unknown charger: without an index that read the whole
chargers table (a sequential scan, and a sort by charge point id) for each one, which anyone may
open. A partial index holds the pending chargers alone, built without blocking the gateway's writes
(``kernel.online_ddl``); a message writes neither of its columns, so its charger update stays HOT."""

from django.db import migrations, models
from django.db.models import Q

from kernel import online_ddl


class Migration(migrations.Migration):
    atomic = False  # CREATE/DROP INDEX CONCURRENTLY run outside a transaction

    dependencies = [
        ("chargepoints", "0017_reported_heartbeat_interval"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AddIndex(
                    model_name="chargepoint",
                    index=models.Index(
                        fields=["id"], condition=Q(lifecycle_state="pending"), name="charge_point_pending"
                    ),
                ),
            ],
            database_operations=[
                online_ddl.index_created(
                    "charge_point_pending", "chargepoints_chargepoint", '("id") WHERE "lifecycle_state" = \'pending\''
                ),
            ],
        ),
    ]
