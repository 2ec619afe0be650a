"""Connectors at fillfactor 70 (issue 15): a StatusNotification's update of its connector (status,
error code, times: no index covers them) finds room on the row's page and writes no entry in the
connector's four indexes (HOT). The table holds a few rows per charger: the room costs little."""

from django.db import migrations

from kernel import online_ddl


class Migration(migrations.Migration):
    dependencies = [
        ("chargepoints", "0010_message_log_without_charger_constraint"),
    ]

    operations = [online_ddl.fillfactor_set("chargepoints_connector", 70)]
