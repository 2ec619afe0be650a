"""The moved models' content types follow them, so the permissions granted on them (and the admin
log entries) stay with the models: rows are relabelled, never recreated."""

from django.db import migrations

MOVED = {
    "chargepoints": ["idtag", "localauthlist", "reservation", "transaction", "metersample", "reconciliationitem"],
    "commands": ["installedchargingprofile"],
}


def content_types_relabel(apps, schema_editor, *, source: str, target: str) -> None:
    ContentType = apps.get_model("contenttypes", "ContentType")
    db = schema_editor.connection.alias
    for old_label, models in MOVED.items():
        labels = {"old": old_label, "new": "charging"}
        for model in models:
            # A row the new label already has (a migrate that ran before this one) wins; the old stays.
            if not ContentType.objects.using(db).filter(app_label=labels[target], model=model).exists():
                ContentType.objects.using(db).filter(app_label=labels[source], model=model).update(
                    app_label=labels[target]
                )


def forwards(apps, schema_editor):
    content_types_relabel(apps, schema_editor, source="old", target="new")


def backwards(apps, schema_editor):
    content_types_relabel(apps, schema_editor, source="new", target="old")


class Migration(migrations.Migration):

    dependencies = [
        ('charging', '0001_sessions_from_chargepoints_and_commands'),
        ('chargepoints', '0006_sessions_moved_to_charging'),
        ('commands', '0005_models_moved_to_charging_and_kernel'),
        ('contenttypes', '0002_remove_content_type_name'),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
