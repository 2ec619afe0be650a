from django.apps import AppConfig

from chargepoints.signals import charge_point_changed


class CommandsConfig(AppConfig):
    name = "commands"

    def ready(self) -> None:
        from commands.receivers import charge_point_change_follow

        charge_point_changed.connect(charge_point_change_follow, dispatch_uid="commands.charge_point_change_follow")
