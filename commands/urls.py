from django.urls import re_path

from chargepoints.identity import IDENTITY_PATTERN
from commands.catalog import COMMANDS, URL_PREFIX
from commands.views import CommandViewSet, OcppCommandView
from kernel.routers import OptionalSlashRouter

router = OptionalSlashRouter()
router.register("commands", CommandViewSet, basename="command")

urlpatterns = [*router.urls]
for version, commands in COMMANDS.items():
    for command in commands:
        view = OcppCommandView.as_view(ocpp_version=version, command=command)
        urlpatterns += [
            re_path(rf"^{URL_PREFIX[version]}/{command}/?$", view),
            re_path(rf"^{URL_PREFIX[version]}/(?P<charge_point_id>{IDENTITY_PATTERN})/{command}/?$", view),
        ]
