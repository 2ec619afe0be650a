"""Amounts keep ISO 4217's 3 decimals (KWD, BHD, OMR, JOD, TND, LYD, IQD).

``BillingRecord.total``: on PostgreSQL the column becomes plain ``numeric``, not ``numeric(13,3)``:
a change of scale rewrites the table (and its indexes) under an exclusive lock, and every stop
writes a billing record, so the gateway's stops would wait for the whole rewrite; dropping the
precision rewrites nothing. Amounts are rounded to their currency's decimals before they are stored
(``kernel.money``), the model's ``DecimalField(13, 3)`` stays the schema of record. Other databases
keep their column as it is (SQLite's decimal holds any scale). ``Tariff.session_fee`` is a small
table's: altered as Django does."""

from django.db import migrations, models

_TOTAL = 'ALTER TABLE "billing_billingrecord" ALTER COLUMN "total" TYPE numeric'


def _total_unconstrained(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(_TOTAL)


def _total_two_decimals(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(_TOTAL + "(12, 2)")


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0005_billing_record_stopped_index"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="billingrecord",
                    name="total",
                    field=models.DecimalField(decimal_places=3, max_digits=13),
                ),
            ],
            database_operations=[migrations.RunPython(_total_unconstrained, _total_two_decimals)],
        ),
        migrations.AlterField(
            model_name="tariff",
            name="session_fee",
            field=models.DecimalField(decimal_places=3, default=0, max_digits=11),
        ),
    ]
