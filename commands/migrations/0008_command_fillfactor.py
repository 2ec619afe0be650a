"""Commands at fillfactor 50 (issue 15, round 23): a command's completion (state, answer, error,
times: no index covers them) more often finds room on the row's page and writes no entry in the
command's seven indexes (HOT). A completion grows its row (a 1.6 configuration read's answer ~3.5×),
so half of them still move; a replay of the fleet's reads: backend CPU per command 0.83."""

from django.db import migrations

from kernel import online_ddl


class Migration(migrations.Migration):
    dependencies = [
        ("commands", "0007_command_charge_point_index_dropped"),
    ]

    operations = [online_ddl.fillfactor_set("commands_command", 50)]
