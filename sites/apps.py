from django.apps import AppConfig

from charging.signals import charger_draw_changed


class SitesConfig(AppConfig):
    name = "sites"
    verbose_name = "Sites (smart charging)"

    def ready(self) -> None:
        from sites.receivers import site_recompute_on_draw

        charger_draw_changed.connect(site_recompute_on_draw, dispatch_uid="sites.site_recompute_on_draw")
