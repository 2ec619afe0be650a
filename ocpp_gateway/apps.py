from django.apps import AppConfig


class OcppGatewayConfig(AppConfig):
    name = "ocpp_gateway"
    verbose_name = "OCPP gateway"

    def ready(self) -> None:
        from ocpp_gateway import compiled_schemas, payload_case, relaxed_schemas

        relaxed_schemas.install()
        payload_case.install()
        compiled_schemas.install()
