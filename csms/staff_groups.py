"""The two staff roles of the back office, as Django groups kept in step with the code.

``support`` may look at everything in the project's apps and change nothing. ``operator`` may
also send commands to chargers, commission them, change their configuration values, settle the
reconciliation queue, re-send webhook deliveries, maintain id tags, tariffs and sites, upload
firmware and run firmware campaigns.
The code is the source of truth: every ``migrate`` sets both groups' permissions to exactly these.
"""

from __future__ import annotations

from typing import Any

from django.apps import AppConfig, apps
from django.contrib.auth.models import Group, Permission, User
from django.db import DEFAULT_DB_ALIAS, transaction
from django.db.models import Q

SUPPORT = "support"
OPERATOR = "operator"
STAFF_GROUPS = (SUPPORT, OPERATOR)

PROJECT_APPS = (
    "chargepoints", "charging", "commands", "webhooks", "billing", "maintenance", "kernel", "configuration", "sites",
)  # fmt: skip
OPERATOR_PERMISSIONS = (
    "commands.send_command",
    "chargepoints.change_chargepoint",
    "charging.change_reconciliationitem",
    "webhooks.change_webhookdelivery",
    "charging.add_idtag",
    "charging.change_idtag",
    "billing.add_tariff",
    "billing.change_tariff",
    "maintenance.add_firmwarefile",
    "maintenance.add_campaign",
    "maintenance.change_campaign",
    "configuration.change_configurationkey",  # saved through a command (commands.send_command)
    "configuration.change_devicemodelattribute",
    "sites.add_site",
    "sites.change_site",
    "sites.add_sitemember",
    "sites.change_sitemember",
)


def staff_groups_ensure(*, using: str = DEFAULT_DB_ALIAS) -> dict[str, Group]:
    """Create both groups if missing and set their permissions. A permission that does not
    exist yet (its migration has not run) is left out and added by a later ``migrate``."""
    read_only = list(
        Permission.objects.using(using).filter(content_type__app_label__in=PROJECT_APPS, codename__startswith="view_")
    )
    with transaction.atomic(using=using):
        support, _ = Group.objects.using(using).get_or_create(name=SUPPORT)
        support.permissions.set(read_only)
        operator, _ = Group.objects.using(using).get_or_create(name=OPERATOR)
        operator.permissions.set(read_only + list(_permissions(OPERATOR_PERMISSIONS, using=using)))
    return {SUPPORT: support, OPERATOR: operator}


def staff_groups_ensure_after_migrate(sender: AppConfig, using: str = DEFAULT_DB_ALIAS, **kwargs: Any) -> None:
    """``post_migrate`` is sent once per app, and auth creates each app's permissions on that
    app's signal: only after the last app's are all permissions there."""
    if sender.label == _last_app_with_models().label:
        staff_groups_ensure(using=using)


def staff_user_create(*, username: str, password: str, group: str, email: str = "") -> User:
    """A staff account in one of the two groups (not a superuser: the group decides what it may do)."""
    if group not in STAFF_GROUPS:
        raise ValueError(f"group must be one of {', '.join(STAFF_GROUPS)}, not {group!r}")
    with transaction.atomic():
        user = User.objects.create_user(username=username, email=email, password=password, is_staff=True)
        user.groups.add(staff_groups_ensure()[group])
    return user


def _permissions(dotted: tuple[str, ...], *, using: str) -> list[Permission]:
    wanted = Q(pk__in=[])
    for name in dotted:
        app_label, codename = name.split(".")
        wanted |= Q(content_type__app_label=app_label, codename=codename)
    return list(Permission.objects.using(using).filter(wanted))


def _last_app_with_models() -> AppConfig:
    # The order emit_post_migrate_signal sends in.
    return [config for config in apps.get_app_configs() if config.models_module is not None][-1]
