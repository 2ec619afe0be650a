from django.urls import include, re_path

from chargepoints.identity import IDENTITY_PATTERN
from commands.catalog import COMMANDS, URL_PREFIX
from commands.views import CommandViewSet, OcppCommandView
from kernel.routers import OptionalSlashRouter

router = OptionalSlashRouter()
router.register("commands", CommandViewSet, basename="command")

urlpatterns = [*router.urls]
# Each version's routes behind its prefix, those with the charger in the path behind its identity:
# a path is matched against its own version's routes only, and a command POST tries one route per
# command at most instead of two (URL resolution was about 4 % of an API process's CPU per command,
# issue 15). The same paths, views and arguments as one flat list (commands/tests/test_command_urls.py).
for version, commands in COMMANDS.items():
    routes = [
        re_path(rf"^{command}/?$", OcppCommandView.as_view(ocpp_version=version, command=command))
        for command in commands
    ]
    urlpatterns.append(
        re_path(
            rf"^{URL_PREFIX[version]}/",
            include([re_path(rf"^(?P<charge_point_id>{IDENTITY_PATTERN})/", include(routes)), *routes]),
        )
    )
