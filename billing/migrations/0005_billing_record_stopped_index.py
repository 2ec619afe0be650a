"""Billing records are listed newest stop first (``Meta.ordering``) and filtered by
``stopped_after``/``stopped_before``: without an index on ``stopped_at`` every page of the API list
(and the admin's changelist) sorted the whole table. Built without blocking the gateway's writes
(``kernel.online_ddl``)."""

from django.db import migrations, models

from kernel import online_ddl


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY runs outside a transaction

    dependencies = [
        ("billing", "0004_billing_record_charger_index"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AddIndex(
                    model_name="billingrecord",
                    index=models.Index(fields=["stopped_at", "id"], name="billing_record_stopped"),
                ),
            ],
            database_operations=[
                online_ddl.index_created("billing_record_stopped", "billing_billingrecord", '("stopped_at", "id")'),
            ],
        ),
    ]
