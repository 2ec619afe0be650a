from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"

    def ready(self) -> None:
        from billing.receivers import billing_record_on_end
        from charging.signals import transaction_ended

        transaction_ended.connect(billing_record_on_end, dispatch_uid="billing.billing_record_on_end")
