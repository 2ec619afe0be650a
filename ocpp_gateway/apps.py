from django.apps import AppConfig


class OcppGatewayConfig(AppConfig):
    name = "ocpp_gateway"
    verbose_name = "OCPP gateway"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

        from charging.models import IdTag
        from commands.routes import command_routes_install
        from kernel import payload_case
        from ocpp_gateway import compiled_schemas, id_tags, relaxed_schemas
        from ocpp_gateway.command_routes import version_routes
        from ocpp_gateway.versions import ROUTERS

        relaxed_schemas.install()
        payload_case.install()
        compiled_schemas.install()
        for signal in (post_save, post_delete):
            signal.connect(id_tags.id_tag_changed, sender=IdTag, dispatch_uid="id_tags.id_tag_changed")
        # Every process that completes commands (API, Celery, gateway) routes their answers.
        for ocpp_version, router in ROUTERS.items():
            command_routes_install(ocpp_version=ocpp_version, routes=version_routes(router))
