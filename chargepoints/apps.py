from django.apps import AppConfig


class ChargepointsConfig(AppConfig):
    name = "chargepoints"
    verbose_name = "Charge points"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_migrate, post_save

        from chargepoints.models import ChargePoint, ChargerModelProfile
        from chargepoints.selectors import profiles_changed
        from chargepoints.services.fleet import charger_pks_changed

        for signal in (post_save, post_delete):
            signal.connect(profiles_changed, sender=ChargerModelProfile, dispatch_uid="chargepoints.profiles_changed")
            signal.connect(charger_pks_changed, sender=ChargePoint, dispatch_uid="chargepoints.charger_pks_changed")
        post_migrate.connect(profiles_changed, sender=self, dispatch_uid="chargepoints.profiles_forgotten")
        post_migrate.connect(charger_pks_changed, sender=self, dispatch_uid="chargepoints.charger_pks_forgotten")
