from django.apps import AppConfig


class OcppGatewayConfig(AppConfig):
    name = "ocpp_gateway"
    verbose_name = "OCPP gateway"

    def ready(self) -> None:
        from kernel import payload_case
        from ocpp_gateway import compiled_schemas, relaxed_schemas

        relaxed_schemas.install()
        payload_case.install()
        compiled_schemas.install()
