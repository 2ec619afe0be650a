from django.apps import AppConfig

from charging.signals import transaction_ended


class BillingConfig(AppConfig):
    name = "billing"

    def ready(self) -> None:
        from billing.receivers import billing_record_on_end

        transaction_ended.connect(billing_record_on_end, dispatch_uid="billing.billing_record_on_end")
