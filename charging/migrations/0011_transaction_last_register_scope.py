# A nullable column: no table rewrite (its sessions' scope is learned from their next reading).

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("charging", "0010_idtag_max_concurrent_sessions"),
    ]

    operations = [
        migrations.AddField(
            model_name="transaction",
            name="last_register_scope",
            field=models.SmallIntegerField(
                blank=True,
                help_text="What the latest register reading measured: its location's rank (Outlet 0, Cable 1, Inlet 2,"
                " EV 3) times 8 plus its phases (L1 1, L2 2, L3 4; a total 7). Empty: not known.",
                null=True,
            ),
        ),
    ]
