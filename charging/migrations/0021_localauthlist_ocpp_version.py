"""A local authorization list records the OCPP version its charger held it in: a charger moved to
another version under the same id (1.6 <-> 2.0.1, a firmware upgrade or downgrade) holds none of the
old firmware's list. Existing rows: the version their charger speaks now, the one the list was most
likely recorded in. A column with a constant default: PostgreSQL adds it without rewriting the
table, and keeps the default (``db_default``) so that the release still serving while this one
migrates inserts without it."""

from django.db import migrations, models
from django.db.models import OuterRef, Subquery


def versions_from_chargers(apps, schema_editor):
    charge_points = apps.get_model("chargepoints", "ChargePoint").objects
    version = Subquery(charge_points.filter(pk=OuterRef("charge_point_id")).values("ocpp_version")[:1])
    apps.get_model("charging", "LocalAuthList").objects.update(ocpp_version=version)


class Migration(migrations.Migration):

    dependencies = [
        ('charging', '0020_transaction_withheld_seconds'),
    ]

    operations = [
        migrations.AddField(
            model_name='localauthlist',
            name='ocpp_version',
            field=models.CharField(blank=True, db_default='', default='', help_text='The OCPP version the charger held it in (1.6, 2.0.1); empty: not known, held in either.', max_length=8),
        ),
        migrations.RunPython(versions_from_chargers, migrations.RunPython.noop),
    ]
