"""A 2.0.1 variable's identity ignores the case of its names and instances (OCPP's CiString): the
rows of one variable spelt several ways become one, the newest spelling's, each attribute type
keeping its most recently learned value (``configuration.report_writes.identity_digest``)."""

import hashlib
import json

from django.db import migrations


def _identity(variable):
    key = [
        variable.component_name,
        variable.component_instance,
        variable.evse_id,
        variable.connector_id,
        variable.variable_name,
        variable.variable_instance,
    ]
    folded = [part.casefold() if isinstance(part, str) else part for part in key]
    return hashlib.sha256(json.dumps(folded).encode()).hexdigest()


def identities_ignoring_case(apps, schema_editor):
    Variable = apps.get_model("configuration", "DeviceModelVariable")
    Attribute = apps.get_model("configuration", "DeviceModelAttribute")
    groups = {}
    for variable in Variable.objects.order_by("-learned_at", "-pk").iterator():
        groups.setdefault((variable.charge_point_id, _identity(variable)), []).append(variable)
    for (_, identity), variables in groups.items():
        kept, others = variables[0], variables[1:]
        if others:
            attributes = Attribute.objects.filter(variable__in=variables).order_by("-learned_at", "-pk")
            newest = {}
            for attribute in attributes:
                newest.setdefault(attribute.type, attribute)
            for attribute in newest.values():
                if attribute.variable_id != kept.pk:
                    Attribute.objects.filter(variable=kept, type=attribute.type).delete()
                    Attribute.objects.filter(pk=attribute.pk).update(variable=kept)
            Variable.objects.filter(pk__in=[variable.pk for variable in others]).delete()
        if kept.identity != identity:
            Variable.objects.filter(pk=kept.pk).update(identity=identity)


class Migration(migrations.Migration):
    dependencies = [
        ("configuration", "0003_report_complete_with_every_part"),
    ]

    operations = [migrations.RunPython(identities_ignoring_case, migrations.RunPython.noop)]
