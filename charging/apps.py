from django.apps import AppConfig

from chargepoints.signals import connector_status_replayed, connector_status_reported


class ChargingConfig(AppConfig):
    """Charging sessions: authorization, transactions, metering, reservations, local lists,
    reconciliation and the charging profiles a charger holds (docs/architecture.md)."""

    name = "charging"
    verbose_name = "Charging sessions"

    def ready(self) -> None:
        from charging.receivers import connector_status_follow, connector_status_replay_follow

        connector_status_reported.connect(connector_status_follow, dispatch_uid="charging.connector_status_follow")
        connector_status_replayed.connect(
            connector_status_replay_follow, dispatch_uid="charging.connector_status_replay_follow"
        )
