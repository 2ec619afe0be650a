from django.apps import AppConfig

from charging.signals import charger_draw_changed


class SitesConfig(AppConfig):
    name = "sites"
    verbose_name = "Sites (smart charging)"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

        from sites.models import SiteMember
        from sites.receivers import site_recompute_on_draw
        from sites.triggers import site_members_changed

        charger_draw_changed.connect(site_recompute_on_draw, dispatch_uid="sites.site_recompute_on_draw")
        for signal in (post_save, post_delete):
            signal.connect(site_members_changed, sender=SiteMember, dispatch_uid="sites.site_members_changed")
