"""A reservation keeps the group it was made for (1.6 ReserveNow parentIdTag, 2.0.1 groupIdToken): a
start by another tag of that group uses it (1.6 §5.13). A column with a constant default: PostgreSQL
adds it without rewriting the table, and keeps the default (``db_default``) so that the release still
serving while this one migrates (README "Upgrading") inserts reservations without naming it."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('charging', '0007_reservation_id_unique_while_active'),
    ]

    operations = [
        migrations.AddField(
            model_name='reservation',
            name='parent_id_tag',
            field=models.CharField(blank=True, db_default='', default='', help_text='1.6 parentIdTag / 2.0.1 groupIdToken: any tag of that group may use it.', max_length=36),
        ),
    ]
