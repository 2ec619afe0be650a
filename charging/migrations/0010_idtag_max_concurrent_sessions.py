"""An id tag may limit the sessions it has open at once (OCPP ConcurrentTx). A nullable column without
a default: PostgreSQL adds it without rewriting the table, and the release still serving while this
one migrates (README "Upgrading") inserts id tags without naming it (no limit)."""

import django.core.validators
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('charging', '0009_session_id_tag_lower_index'),
    ]

    operations = [
        migrations.AddField(
            model_name='idtag',
            name='max_concurrent_sessions',
            field=models.PositiveSmallIntegerField(blank=True, help_text='Sessions this id tag may have open at once on all chargers; beyond it an Authorize or a start elsewhere is answered ConcurrentTx. Blank: no limit.', null=True, validators=[django.core.validators.MinValueValidator(1)]),
        ),
    ]
