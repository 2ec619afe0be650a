"""The API key's content type follows the model, so the permissions granted on it stay: the row
is relabelled, never recreated."""

from django.db import migrations


def content_type_relabel(apps, schema_editor, *, source: str, target: str) -> None:
    ContentType = apps.get_model("contenttypes", "ContentType")
    db = schema_editor.connection.alias
    # A row the target label already has (a migrate that ran before this one) wins; the other stays.
    if not ContentType.objects.using(db).filter(app_label=target, model="apikey").exists():
        ContentType.objects.using(db).filter(app_label=source, model="apikey").update(app_label=target)


def forwards(apps, schema_editor):
    content_type_relabel(apps, schema_editor, source="csms", target="kernel")


def backwards(apps, schema_editor):
    content_type_relabel(apps, schema_editor, source="kernel", target="csms")


class Migration(migrations.Migration):

    dependencies = [
        ('kernel', '0001_api_key_from_csms'),
        ('csms', '0003_api_key_moved_to_kernel'),
        ('contenttypes', '0002_remove_content_type_name'),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
