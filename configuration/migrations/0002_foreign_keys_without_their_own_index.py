"""What a charger's first configuration read costs PostgreSQL (issue 15): the foreign keys whose
column leads a unique constraint of their table lose their own index (the constraint's index serves
their lookups and the cascades), dropped without blocking the gateway's writes
(``kernel.online_ddl``): one index entry less per 1.6 key, per 2.0.1 variable and attribute, and
per report stored."""

import django.db.models.deletion
from django.db import migrations, models

from kernel import online_ddl

_CHARGER_FKS = [
    ("configurationkey", "configuration_keys", "configuration_configurationkey_charge_point_id_9982fd80"),
    ("devicemodelvariable", "device_model_variables", "configuration_devicemodelvariable_charge_point_id_53f9dc49"),
    ("devicemodelreport", "device_model_reports", "configuration_devicemodelreport_charge_point_id_836dfbaf"),
]


class Migration(migrations.Migration):
    atomic = False  # DROP/CREATE INDEX CONCURRENTLY run outside a transaction

    dependencies = [
        ("configuration", "0001_configuration_store"),
    ]

    operations = [
        *(
            migrations.SeparateDatabaseAndState(
                state_operations=[
                    migrations.AlterField(
                        model_name=model,
                        name="charge_point",
                        field=models.ForeignKey(
                            db_index=False,
                            on_delete=django.db.models.deletion.CASCADE,
                            related_name=related_name,
                            to="chargepoints.chargepoint",
                        ),
                    ),
                ],
                database_operations=[online_ddl.index_dropped(index, f"configuration_{model}", '("charge_point_id")')],
            )
            for model, related_name, index in _CHARGER_FKS
        ),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="devicemodelattribute",
                    name="variable",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="attributes",
                        to="configuration.devicemodelvariable",
                    ),
                ),
            ],
            database_operations=[
                online_ddl.index_dropped(
                    "configuration_devicemodelattribute_variable_id_85555e7c",
                    "configuration_devicemodelattribute",
                    '("variable_id")',
                )
            ],
        ),
    ]
