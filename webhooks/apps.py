from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "webhooks"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

        from webhooks.models import WebhookSubscription
        from webhooks.services import webhook_subscriptions_changed

        for signal in (post_save, post_delete):
            signal.connect(
                webhook_subscriptions_changed, sender=WebhookSubscription, dispatch_uid="webhook_subscriptions_changed"
            )
