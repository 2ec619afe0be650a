from django.urls import re_path

from chargepoints.identity import IDENTITY_PATTERN
from commands.catalog import COMMANDS
from commands.views import CommandViewSet, OcppCommandView
from csms.routers import OptionalSlashRouter

router = OptionalSlashRouter()
router.register("commands", CommandViewSet, basename="command")

_PREFIX = {"1.6": "ocpp16", "2.0.1": "ocpp201"}

urlpatterns = [*router.urls]
for version, commands in COMMANDS.items():
    for command in commands:
        view = OcppCommandView.as_view(ocpp_version=version, command=command)
        urlpatterns += [
            re_path(rf"^{_PREFIX[version]}/{command}/?$", view),
            re_path(rf"^{_PREFIX[version]}/(?P<charge_point_id>{IDENTITY_PATTERN})/{command}/?$", view),
        ]
