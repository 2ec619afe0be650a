"""An installed profile's purpose holds every 2.0.1 ChargingProfilePurposeType: the longest,
ChargingStationExternalConstraints, is 34 characters (varchar(32) refused it). Widening a varchar
changes only PostgreSQL's catalog: no table rewrite, no index rebuilt."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("charging", "0005_session_write_cost"),
    ]

    operations = [
        migrations.AlterField(
            model_name="installedchargingprofile",
            name="purpose",
            field=models.CharField(
                help_text="ChargingProfilePurposeType: up to 34 characters (ChargingStationExternalConstraints).",
                max_length=64,
            ),
        ),
    ]
