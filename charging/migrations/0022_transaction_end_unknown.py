"""A session its charger's restart ended with a stop telling no time (``end_unknown``: ended at the
boot, billed to its last evidence) keeps that, so that a late event re-pricing it bills it the same
way. Existing rows: false (as they were re-priced). A constant default: PostgreSQL adds the column
without rewriting the table, and keeps the default (``db_default``) so that the release still
serving while this one migrates inserts without it."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('charging', '0021_localauthlist_ocpp_version'),
    ]

    operations = [
        migrations.AddField(
            model_name='transaction',
            name='end_unknown',
            field=models.BooleanField(db_default=False, default=False, help_text="Its charger's stop told no time of its end (a restart's, stamped 1970 or unstamped): ended at the charger's boot, its time billed up to its last evidence, also when a late event re-prices it."),
        ),
    ]
