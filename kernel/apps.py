from django.apps import AppConfig


class KernelConfig(AppConfig):
    """What every app imports: API errors, the API key model and its checks, routers and pagination,
    admin mixins, OCPP payload helpers. It imports no other app of the CSMS; docs/architecture.md
    has the layers."""

    name = "kernel"
    verbose_name = "API access"  # its admin section: the API keys (the name they had under csms)

    def ready(self) -> None:
        from kernel import connection_storage, redis_version

        connection_storage.install()  # connections read without an exception per lookup (issue 15)
        redis_version.install()  # a Redis connection built without reading redis-py's metadata (issue 15)
