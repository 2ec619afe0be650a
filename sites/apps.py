from django.apps import AppConfig

from charging.signals import charger_draw_changed, charging_profile_named


class SitesConfig(AppConfig):
    name = "sites"
    verbose_name = "Sites (smart charging)"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

        from chargepoints.signals import charging_rate_units_changed
        from sites.models import SiteMember
        from sites.receivers import site_failsafe_named, site_members_rate_units_learned, site_recompute_on_draw
        from sites.triggers import site_members_changed

        charger_draw_changed.connect(site_recompute_on_draw, dispatch_uid="sites.site_recompute_on_draw")
        charging_profile_named.connect(site_failsafe_named, dispatch_uid="sites.site_failsafe_named")
        charging_rate_units_changed.connect(
            site_members_rate_units_learned, dispatch_uid="sites.site_members_rate_units_learned"
        )
        for signal in (post_save, post_delete):
            signal.connect(site_members_changed, sender=SiteMember, dispatch_uid="sites.site_members_changed")
