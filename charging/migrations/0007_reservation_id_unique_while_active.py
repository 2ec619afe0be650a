"""A reservation id is unique among a charger's active reservations only: one reused after its
reservation ended (used by a session, cancelled, expired) is a new record, and the ended one keeps
its own (a session's reservation was overwritten by the reuse)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("chargepoints", "0016_password_after_reboot"),
        ("charging", "0006_installed_profile_purpose_fits_every_purpose"),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name="reservation",
            name="reservation_id_unique_per_charger",
        ),
        migrations.AddConstraint(
            model_name="reservation",
            constraint=models.UniqueConstraint(
                condition=models.Q(("status", "active")),
                fields=("charge_point", "reservation_id"),
                name="reservation_id_unique_while_active",
            ),
        ),
    ]
