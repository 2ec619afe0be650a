from django.apps import AppConfig


class OcppGatewayConfig(AppConfig):
    name = "ocpp_gateway"
    verbose_name = "OCPP gateway"
