"""A 2.0.1 reservation keeps the type of the idToken it was made for (2.0.1 identifies a token by its
idToken and type): a start of the same characters of another type (a card ``1234`` for a PIN code
``1234``) does not use it. Existing rows: blank, type not known, used by any type as before. A column
with a constant default: PostgreSQL adds it without rewriting the table, and keeps the default
(``db_default``) so that the release still serving while this one migrates inserts without it."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('charging', '0018_installedchargingprofile_ocpp_version'),
    ]

    operations = [
        migrations.AddField(
            model_name='reservation',
            name='token_type',
            field=models.CharField(blank=True, db_default='', default='', help_text='2.0.1 idToken type (ISO14443, KeyCode, ...): only a token of that type uses it; blank: any type (1.6, or made before the type was kept).', max_length=20),
        ),
    ]
