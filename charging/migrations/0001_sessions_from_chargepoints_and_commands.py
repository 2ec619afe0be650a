"""The sessions models move here from chargepoints, the installed charging profiles from commands; they keep their tables (issue 16)."""

import django.db.models.deletion
import django.db.models.functions.text
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('chargepoints', '0005_schema_violation_frame'),
        ('commands', '0004_command_request_fingerprint'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        # State only: the table stays where it is (db_table), nothing is copied or renamed.
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='LocalAuthList',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('version', models.IntegerField()),
                        ('entries', models.JSONField(default=dict, help_text='id tag -> status, after the last accepted update.')),
                        ('updated_at', models.DateTimeField(auto_now=True)),
                        ('charge_point', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='local_auth_list', to='chargepoints.chargepoint')),
                    ],
                    options={
                        'db_table': 'chargepoints_localauthlist',
                    },
                ),
                migrations.CreateModel(
                    name='Reservation',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('reservation_id', models.IntegerField()),
                        ('connector_id', models.PositiveIntegerField(blank=True, help_text='1.6 connectorId (0: any).', null=True)),
                        ('evse_id', models.PositiveIntegerField(blank=True, help_text='2.0.1 evseId (absent: any).', null=True)),
                        ('id_tag', models.CharField(max_length=36)),
                        ('expiry_date', models.DateTimeField()),
                        ('status', models.CharField(choices=[('active', 'Active'), ('refused', 'Refused by the charger'), ('cancelled', 'Cancelled'), ('expired', 'Expired'), ('used', 'Used by a transaction')], default='active', max_length=16)),
                        ('charger_status', models.CharField(blank=True, help_text="The charger's answer to ReserveNow.", max_length=32)),
                        ('created_at', models.DateTimeField(auto_now_add=True)),
                        ('updated_at', models.DateTimeField(auto_now=True)),
                        ('charge_point', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='reservations', to='chargepoints.chargepoint')),
                    ],
                    options={
                        'db_table': 'chargepoints_reservation',
                        'ordering': ['-created_at'],
                    },
                ),
                migrations.CreateModel(
                    name='Transaction',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('ocpp_version', models.CharField(choices=[('1.6', 'OCPP 1.6'), ('2.0.1', 'OCPP 2.0.1')], max_length=8)),
                        ('ocpp_transaction_id', models.CharField(blank=True, help_text='2.0.1 transactionId.', max_length=36)),
                        ('start_key', models.CharField(help_text='What identifies a replay of the same start.', max_length=200)),
                        ('evse_id', models.PositiveIntegerField(blank=True, null=True)),
                        ('connector_id', models.PositiveIntegerField(blank=True, null=True)),
                        ('id_tag', models.CharField(blank=True, max_length=36)),
                        ('id_token_type', models.CharField(blank=True, max_length=20)),
                        ('id_tag_status', models.CharField(blank=True, help_text='The authorization answered at start.', max_length=16)),
                        ('stop_id_tag', models.CharField(blank=True, max_length=36)),
                        ('status', models.CharField(choices=[('active', 'Active'), ('ended', 'Ended')], default='active', max_length=8)),
                        ('started_at', models.DateTimeField(db_index=True)),
                        ('stopped_at', models.DateTimeField(blank=True, null=True)),
                        ('charger_started_at', models.DateTimeField(blank=True, help_text='The start as sent, when its receipt was used instead (chargepoints.clock).', null=True)),
                        ('charger_stopped_at', models.DateTimeField(blank=True, help_text='The stop as sent, when its receipt was used instead (chargepoints.clock).', null=True)),
                        ('meter_start_wh', models.DecimalField(blank=True, decimal_places=3, max_digits=20, null=True)),
                        ('meter_stop_wh', models.DecimalField(blank=True, decimal_places=3, max_digits=20, null=True)),
                        ('last_register_wh', models.DecimalField(blank=True, decimal_places=3, help_text='Latest energy register reading.', max_digits=20, null=True)),
                        ('last_register_at', models.DateTimeField(blank=True, null=True)),
                        ('energy_wh', models.DecimalField(blank=True, decimal_places=3, max_digits=20, null=True)),
                        ('stop_reason', models.CharField(blank=True, max_length=32)),
                        ('closed_by_csms', models.BooleanField(default=False, help_text='Closed without a stop from the charger.')),
                        ('idle_since', models.DateTimeField(blank=True, help_text='Connected but not charging since.', null=True)),
                        ('idle_seconds', models.PositiveIntegerField(default=0, help_text='Idle time before idle_since.')),
                        ('time_spent_charging', models.PositiveIntegerField(blank=True, help_text='2.0.1 timeSpentCharging.', null=True)),
                        ('seq_nos', models.JSONField(blank=True, default=list, help_text='2.0.1 seqNo values processed.')),
                        ('remote_start_id', models.IntegerField(blank=True, null=True)),
                        ('anomalies', models.JSONField(blank=True, default=list, help_text='Meter checks that failed (see metering).')),
                        ('needs_review', models.BooleanField(db_index=True, default=False)),
                        ('created_at', models.DateTimeField(auto_now_add=True)),
                        ('updated_at', models.DateTimeField(auto_now=True)),
                        ('charge_point', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='transactions', to='chargepoints.chargepoint')),
                        ('reservation', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='transactions', to='charging.reservation')),
                    ],
                    options={
                        'db_table': 'chargepoints_transaction',
                        'ordering': ['-started_at', '-id'],
                    },
                ),
                migrations.CreateModel(
                    name='ReconciliationItem',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('reason', models.CharField(choices=[('unknown_transaction', 'Stop for an unknown transaction'), ('invalid_transaction_id', 'Stop with transactionId -1'), ('already_stopped', 'Second stop for a stopped transaction'), ('null_id_tag', 'Stop with a null idTag')], max_length=32)),
                        ('state', models.CharField(choices=[('open', 'Open'), ('attached', 'Attached to a transaction'), ('discarded', 'Discarded')], default='open', max_length=16)),
                        ('action', models.CharField(max_length=64)),
                        ('ocpp_transaction_id', models.CharField(blank=True, help_text='As the charger sent it.', max_length=36)),
                        ('payload', models.JSONField(help_text='The message as received.')),
                        ('meter_stop_wh', models.DecimalField(blank=True, decimal_places=3, max_digits=20, null=True)),
                        ('stopped_at', models.DateTimeField(blank=True, null=True)),
                        ('stop_reason', models.CharField(blank=True, max_length=32)),
                        ('id_tag', models.CharField(blank=True, max_length=36)),
                        ('seq_no', models.BigIntegerField(blank=True, help_text='2.0.1 seqNo of the parked event.', null=True)),
                        ('received_at', models.DateTimeField()),
                        ('resolved_at', models.DateTimeField(blank=True, null=True)),
                        ('note', models.TextField(blank=True)),
                        ('charge_point', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='reconciliation_items', to='chargepoints.chargepoint')),
                        ('resolved_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                        ('transaction', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='reconciliation_items', to='charging.transaction')),
                    ],
                    options={
                        'db_table': 'chargepoints_reconciliationitem',
                        'ordering': ['-received_at'],
                    },
                ),
                migrations.CreateModel(
                    name='MeterSample',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('evse_id', models.PositiveIntegerField(blank=True, null=True)),
                        ('connector_id', models.PositiveIntegerField(blank=True, null=True)),
                        ('source', models.CharField(help_text='The message it came in (MeterValues, StopTransaction, ...).', max_length=32)),
                        ('timestamp', models.DateTimeField()),
                        ('charger_timestamp', models.DateTimeField(blank=True, help_text='The timestamp as sent, when its receipt was used instead.', null=True)),
                        ('measurand', models.CharField(max_length=64)),
                        ('phase', models.CharField(blank=True, max_length=8)),
                        ('unit', models.CharField(blank=True, max_length=20)),
                        ('multiplier', models.SmallIntegerField(default=0, help_text='2.0.1 unitOfMeasure.multiplier (power of ten).')),
                        ('context', models.CharField(blank=True, max_length=32)),
                        ('location', models.CharField(blank=True, max_length=16)),
                        ('format', models.CharField(blank=True, max_length=16)),
                        ('raw_value', models.TextField(help_text='The value as received.')),
                        ('signed_data', models.JSONField(blank=True, help_text='SignedData / signedMeterValue as received.', null=True)),
                        ('value', models.DecimalField(blank=True, decimal_places=6, help_text='In the base unit (Wh, W, A, V, ...).', max_digits=24, null=True)),
                        ('received_at', models.DateTimeField()),
                        ('charge_point', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='meter_samples', to='chargepoints.chargepoint')),
                        ('reconciliation_item', models.ForeignKey(blank=True, help_text='The parked stop it came in; attaching the stop moves it to the transaction.', null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='meter_samples', to='charging.reconciliationitem')),
                        ('transaction', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='meter_samples', to='charging.transaction')),
                    ],
                    options={
                        'db_table': 'chargepoints_metersample',
                        'ordering': ['timestamp', 'id'],
                    },
                ),
                migrations.CreateModel(
                    name='IdTag',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('id_tag', models.CharField(help_text='1.6 idTag (max 20) or 2.0.1 idToken (max 36); matched case-insensitively.', max_length=36)),
                        ('token_type', models.CharField(blank=True, help_text='2.0.1 idToken type (ISO14443, eMAID, ...); blank matches any type.', max_length=20)),
                        ('status', models.CharField(choices=[('Accepted', 'Accepted'), ('Blocked', 'Blocked'), ('Expired', 'Expired'), ('Invalid', 'Invalid')], default='Accepted', max_length=16)),
                        ('expiry_date', models.DateTimeField(blank=True, null=True)),
                        ('description', models.CharField(blank=True, max_length=200)),
                        ('created_at', models.DateTimeField(auto_now_add=True)),
                        ('updated_at', models.DateTimeField(auto_now=True)),
                        ('parent', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='children', to='charging.idtag', verbose_name='parent id tag')),
                    ],
                    options={
                        'db_table': 'chargepoints_idtag',
                        'ordering': ['id_tag'],
                        'constraints': [models.UniqueConstraint(django.db.models.functions.text.Lower('id_tag'), name='id_tag_unique_case_insensitive')],
                    },
                ),
                migrations.CreateModel(
                    name='InstalledChargingProfile',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('connector_id', models.PositiveIntegerField(help_text='1.6 connectorId or 2.0.1 evseId; 0 is the whole station.')),
                        ('profile_id', models.IntegerField()),
                        ('purpose', models.CharField(max_length=32)),
                        ('stack_level', models.IntegerField()),
                        ('valid_from', models.DateTimeField(blank=True, null=True)),
                        ('valid_to', models.DateTimeField(blank=True, null=True)),
                        ('profile', models.JSONField()),
                        ('installed_at', models.DateTimeField(auto_now=True)),
                        ('charge_point', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='charging_profiles', to='chargepoints.chargepoint')),
                    ],
                    options={
                        'db_table': 'commands_installedchargingprofile',
                        'constraints': [models.UniqueConstraint(fields=('charge_point', 'connector_id', 'profile_id'), name='charging_profile_unique_per_connector')],
                    },
                ),
                migrations.AddIndex(
                    model_name='reservation',
                    index=models.Index(fields=['status', 'expiry_date'], name='chargepoint_status_1f95dd_idx'),
                ),
                migrations.AddConstraint(
                    model_name='reservation',
                    constraint=models.UniqueConstraint(fields=('charge_point', 'reservation_id'), name='reservation_id_unique_per_charger'),
                ),
                migrations.AddIndex(
                    model_name='transaction',
                    index=models.Index(fields=['charge_point', 'status'], name='chargepoint_charge__1ed87e_idx'),
                ),
                migrations.AddIndex(
                    model_name='transaction',
                    index=models.Index(fields=['id_tag', 'started_at'], name='chargepoint_id_tag_c976eb_idx'),
                ),
                migrations.AddConstraint(
                    model_name='transaction',
                    constraint=models.UniqueConstraint(condition=models.Q(('status', 'active')), fields=('charge_point', 'start_key'), name='transaction_start_unique_while_active'),
                ),
                migrations.AddIndex(
                    model_name='reconciliationitem',
                    index=models.Index(fields=['state', 'received_at'], name='chargepoint_state_dfd9c7_idx'),
                ),
                migrations.AddIndex(
                    model_name='metersample',
                    index=models.Index(fields=['transaction', 'measurand', 'timestamp'], name='chargepoint_transac_121692_idx'),
                ),
            ],
        ),
    ]
