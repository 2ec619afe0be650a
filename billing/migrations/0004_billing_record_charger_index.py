"""A stop's billing record writes one index entry fewer (issue 15): ``charge_point_identity``'s
``varchar_pattern_ops`` twin goes (records are filtered by an exact charger id; the admin's
search is a substring match, which no B-tree serves); its index stays, renamed as the model's
``Meta`` names it. Without blocking the gateway's writes (``kernel.online_ddl``)."""

from django.db import migrations, models

from kernel import online_ddl

_RECORDS = "billing_billingrecord"


class Migration(migrations.Migration):
    atomic = False  # DROP INDEX CONCURRENTLY runs outside a transaction

    dependencies = [
        ("billing", "0003_transaction_moved_to_charging"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="billingrecord",
                    name="charge_point_identity",
                    field=models.CharField(max_length=48),
                ),
                migrations.AddIndex(
                    model_name="billingrecord",
                    index=models.Index(fields=["charge_point_identity"], name="billing_record_charger"),
                ),
            ],
            database_operations=[
                online_ddl.postgresql_only_index_dropped(
                    "billing_billingrecord_charge_point_identity_2010945f_like",
                    _RECORDS,
                    '("charge_point_identity" varchar_pattern_ops)',
                ),
                online_ddl.index_renamed(
                    "billing_billingrecord_charge_point_identity_2010945f",
                    "billing_record_charger",
                    _RECORDS,
                    '("charge_point_identity")',
                ),
            ],
        ),
    ]
