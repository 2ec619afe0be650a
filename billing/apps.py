from django.apps import AppConfig

from charging.signals import transaction_ended


class BillingConfig(AppConfig):
    name = "billing"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_migrate, post_save, pre_save

        from billing.models import Tariff
        from billing.receivers import billing_record_on_end, tariffs_kept_before_change
        from billing.selectors import tariffs_changed, tariffs_forgotten_after_migrate
        from chargepoints.models import ChargePoint

        transaction_ended.connect(billing_record_on_end, dispatch_uid="billing.billing_record_on_end")
        for sender in (Tariff, ChargePoint):
            pre_save.connect(tariffs_kept_before_change, sender=sender, dispatch_uid="billing.tariffs_kept")
        for signal in (post_save, post_delete):
            for sender in (Tariff, ChargePoint):
                signal.connect(tariffs_changed, sender=sender, dispatch_uid="billing.tariffs_changed")
        post_migrate.connect(tariffs_forgotten_after_migrate, sender=self, dispatch_uid="billing.tariffs_forgotten")
