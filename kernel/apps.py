from django.apps import AppConfig


class KernelConfig(AppConfig):
    """What every app imports: API errors, keys, routers and pagination, admin mixins, OCPP payload
    helpers. It imports no other app of the CSMS but ``csms.models`` (the API key model, until it
    moves here); docs/architecture.md has the layers."""

    name = "kernel"
    verbose_name = "Kernel"
