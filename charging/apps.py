from django.apps import AppConfig


class ChargingConfig(AppConfig):
    """Charging sessions: authorization, transactions, metering, reservations, local lists,
    reconciliation and the charging profiles a charger holds (docs/architecture.md)."""

    name = "charging"
    verbose_name = "Charging sessions"
