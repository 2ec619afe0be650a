"""The API key model moves here from csms and keeps its table csms_apikey (issue 16)."""

from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('csms', '0002_api_key_scope_expiry_last_used'),
    ]

    operations = [
        # State only: the table stays where it is (db_table), nothing is copied or renamed.
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='ApiKey',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('name', models.CharField(max_length=100)),
                        ('prefix', models.CharField(help_text='First characters of the key, to recognise it.', max_length=16)),
                        ('key_hash', models.CharField(max_length=64, unique=True)),
                        ('scope', models.CharField(choices=[('full', 'Full access'), ('read_only', 'Read only (no commands, no changes)')], default='full', max_length=16)),
                        ('created_at', models.DateTimeField(auto_now_add=True)),
                        ('expires_at', models.DateTimeField(blank=True, help_text='Refused from this moment on.', null=True)),
                        ('last_used_at', models.DateTimeField(blank=True, help_text='The last authenticated request (recorded at most once a minute).', null=True)),
                        ('revoked_at', models.DateTimeField(blank=True, null=True)),
                    ],
                    options={
                        'verbose_name': 'API key',
                        'db_table': 'csms_apikey',
                        'ordering': ['-created_at'],
                    },
                ),
            ],
        ),
    ]
