"""The admin's search of sessions by id tag matches the tag ignoring case, as OCPP matches tags (a
charger sends a card's tag in its own case): the index on (id_tag, started_at) becomes one on
(LOWER(id_tag), started_at), built and dropped without blocking the gateway's writes
(``kernel.online_ddl``). A start writes one entry in it, as before."""

import django.db.models.functions.text
from django.db import migrations, models

from kernel import online_ddl

_SESSIONS = "chargepoints_transaction"


class Migration(migrations.Migration):
    atomic = False  # CREATE/DROP INDEX CONCURRENTLY run outside a transaction

    dependencies = [
        ("charging", "0008_reservation_parent_id_tag"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveIndex(model_name="transaction", name="chargepoint_id_tag_c976eb_idx"),
                migrations.AddIndex(
                    model_name="transaction",
                    index=models.Index(
                        django.db.models.functions.text.Lower("id_tag"), "started_at", name="session_id_tag_lower"
                    ),
                ),
            ],
            database_operations=[
                online_ddl.index_created("session_id_tag_lower", _SESSIONS, '(LOWER("id_tag"), "started_at")'),
                online_ddl.index_dropped("chargepoint_id_tag_c976eb_idx", _SESSIONS, '("id_tag", "started_at")'),
            ],
        ),
    ]
