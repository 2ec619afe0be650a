import re
from typing import Any

from django.urls import URLPattern, URLResolver, include, re_path
from django.urls.resolvers import ResolverMatch, RoutePattern

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
# (prefix, charger in the path, command) -> its route, for ``CommandRoutesAtOnce``.
_ROUTES: dict[tuple[str, bool, str], URLPattern] = {}
for version, commands in COMMANDS.items():
    views = {command: OcppCommandView.as_view(ocpp_version=version, command=command) for command in commands}
    by_path = [
        re_path(rf"^(?P<charge_point_id>{IDENTITY_PATTERN})/{command}/?$", views[command]) for command in commands
    ]
    in_body = [re_path(rf"^{command}/?$", views[command]) for command in commands]
    urlpatterns.append(re_path(rf"^{URL_PREFIX[version]}/", include([*by_path, *in_body])))
    for command, with_id, in_the_body in zip(commands, by_path, in_body, strict=True):
        _ROUTES[URL_PREFIX[version], True, command] = with_id
        _ROUTES[URL_PREFIX[version], False, command] = in_the_body

# A path's version prefix, the segment before its last (the charger, if any) and the last (the command).
_COMMAND_PATH = re.compile(r"(?P<prefix>[a-z0-9]+)/(?:(?P<with_id>[^/]+)/)?(?P<command>[a-z0-9_]+)/?\Z")


class CommandRoutesAtOnce(URLResolver):
    """The command routes above, found at once for ``/api/v1/`` (first in the root URLconf): the
    path's prefix and last segment pick the one route it could match, whose own pattern then
    resolves it (the same view, arguments and route as Django's walk through the nested includes,
    which cost about 110 µs of every command POST, issue 15). Any other path is None here and
    Django's walk goes on as before. It lists no routes of its own: ``reverse`` and the API
    schema see each route once, where ``urlpatterns`` has it."""

    def __init__(self) -> None:
        super().__init__(RoutePattern("api/v1/"), [])

    def resolve(self, path: Any) -> ResolverMatch | None:  # type: ignore[override]  # None: not a command path
        prefixed = self.pattern.match(str(path))
        picked = _COMMAND_PATH.match(prefixed[0]) if prefixed else None
        if picked is None:
            return None
        route = _ROUTES.get((picked["prefix"], picked["with_id"] is not None, picked["command"]))
        found = route.resolve(picked.string[picked.end("prefix") + 1 :]) if route is not None else None
        if found is None:
            return None
        in_prefix = f"^{picked['prefix']}/"
        return ResolverMatch(
            found.func,
            found.args,
            found.kwargs,
            found.url_name,
            # As Django's walk: the prefix's include, commands.urls' include, and the route.
            route=in_prefix + found.route.removeprefix("^"),
            tried=[[route]],
            captured_kwargs=found.captured_kwargs,  # type: ignore[attr-defined]  # Django's, unstubbed
            extra_kwargs=found.extra_kwargs,  # type: ignore[attr-defined]
        )


command_routes_at_once = CommandRoutesAtOnce()
