from __future__ import annotations

from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps
from django.db.models.signals import post_migrate


class CsmsConfig(AppConfig):
    default = True  # two configs live here; this one is the csms app's
    name = "csms"
    verbose_name = "API access"

    def ready(self) -> None:
        from csms.staff_groups import staff_groups_ensure_after_migrate

        post_migrate.connect(staff_groups_ensure_after_migrate, dispatch_uid="csms.staff_groups_ensure")


class CsmsAdminConfig(admin_apps.AdminConfig):
    """Django's admin, with the operator dashboard as its index (INSTALLED_APPS names it)."""

    default = False
    default_site = "csms.admin_site.CsmsAdminSite"
