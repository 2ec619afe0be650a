from django.urls import include, re_path

from chargepoints.identity import IDENTITY_PATTERN
from commands.catalog import COMMANDS, URL_PREFIX
from commands.views import CommandViewSet, OcppCommandView
from kernel.routers import OptionalSlashRouter

router = OptionalSlashRouter()
router.register("commands", CommandViewSet, basename="command")

urlpatterns = [*router.urls]
# Each version's routes behind its prefix, those with the charger in the path first (no path
# matches both forms): a path is matched against its own version's routes only, and a command
# POST tries at most one route per command (before: two, after every route of chargepoints.urls
# and charging.urls; URL resolution was about 4 % of an API process's CPU per command, issue 15).
# The same paths, views and arguments as one flat list (commands/tests/test_command_urls.py).
for version, commands in COMMANDS.items():
    views = {command: OcppCommandView.as_view(ocpp_version=version, command=command) for command in commands}
    by_path = [
        re_path(rf"^(?P<charge_point_id>{IDENTITY_PATTERN})/{command}/?$", views[command]) for command in commands
    ]
    in_body = [re_path(rf"^{command}/?$", views[command]) for command in commands]
    urlpatterns.append(re_path(rf"^{URL_PREFIX[version]}/", include([*by_path, *in_body])))
