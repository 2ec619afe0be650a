"""The command routes, grouped by version and by the charger in the path (commands/urls.py): the
same paths, views and arguments as the flat list they were, and fewer routes tried per POST."""

from __future__ import annotations

import pytest
from django.urls import Resolver404, URLResolver, re_path, resolve
from django.urls.resolvers import RegexPattern

from chargepoints.identity import IDENTITY_PATTERN
from commands.catalog import COMMANDS, URL_PREFIX
from commands.urls import command_routes_at_once
from commands.views import OcppCommandView


def _flat() -> URLResolver:
    """The routes as they were: two per command, one after the other, under ``/api/v1/``."""
    routes = []
    for version, commands in COMMANDS.items():
        for command in commands:
            view = OcppCommandView.as_view(ocpp_version=version, command=command)
            routes += [
                re_path(rf"^{URL_PREFIX[version]}/{command}/?$", view),
                re_path(rf"^{URL_PREFIX[version]}/(?P<charge_point_id>{IDENTITY_PATTERN})/{command}/?$", view),
            ]
    return URLResolver(RegexPattern(r"^/api/v1/"), routes)


def _paths() -> list[str]:
    paths = []
    for version, commands in COMMANDS.items():
        prefix = f"/api/v1/{URL_PREFIX[version]}"
        for command in commands:
            paths += [f"{prefix}/{command}", f"{prefix}/{command}/", f"{prefix}/CP-1/{command}"]
            paths += [f"{prefix}/{commands[0]}/{command}/", f"{prefix}/a.b:c|d@e/{command}"]
    return [*paths, "/api/v1/ocpp16/../reset", "/api/v1/ocpp16/./reset", "/api/v1/ocpp16/CP-1/reset/x"]


@pytest.mark.parametrize("path", _paths())
def test_a_command_path_reaches_the_view_and_arguments_the_flat_routes_gave(path):
    flat = _flat()
    try:
        expected = flat.resolve(path)
    except Exception:
        expected = None
    try:
        found = resolve(path)
    except Exception:
        found = None
    if expected is None:
        assert found is None or found.func.__name__ != "OcppCommandView"
        return
    assert found is not None
    assert found.func.view_initkwargs == expected.func.view_initkwargs
    assert found.kwargs == expected.kwargs


@pytest.mark.parametrize("version", COMMANDS)
def test_a_command_post_tries_at_most_one_route_per_command(version):
    """Failed before the grouping: the last command of a version tried both routes of every
    command before it, after every route of chargepoints.urls and charging.urls."""
    commands = COMMANDS[version]
    match = resolve(f"/api/v1/{URL_PREFIX[version]}/CP-1/{commands[-1]}")
    assert match.func.view_initkwargs["command"] == commands[-1]
    # the root's routes before /api/v1/ (6), the schema and docs, the commands router (2), the prefix
    assert len(match.tried) <= len(commands) + 12


def _walked(path: str):
    """``path`` resolved by Django's walk alone: the root URLconf without ``command_routes_at_once``."""
    from csms import urls

    routes = [route for route in urls.urlpatterns if route is not command_routes_at_once]
    try:
        return URLResolver(RegexPattern(r"^/"), routes).resolve(path)  # type: ignore[arg-type]
    except Resolver404:
        return None


_OTHERS = ["/api/v1/commands/", "/api/v1/ocpp16/CP-1/nothing", "/api/v1/ocpp17/reset", "/admin/"]


@pytest.mark.parametrize("path", [*_paths(), *_OTHERS])
def test_a_path_found_at_once_resolves_as_djangos_walk_finds_it(path):
    """The same view, arguments, route and names as Django's walk through the nested includes (the
    command routes found at once, issue 15); a path no command route takes is left to the walk."""
    walked = _walked(path)
    at_once = command_routes_at_once.resolve(path.removeprefix("/"))
    try:
        found = resolve(path)
    except Resolver404:
        found = None
    if walked is None:
        assert at_once is None and found is None
        return
    assert found is not None
    for attribute in ("func", "args", "kwargs", "url_name", "route", "app_names", "namespaces", "captured_kwargs"):
        assert getattr(found, attribute) == getattr(walked, attribute), attribute
    assert found.extra_kwargs == walked.extra_kwargs
    is_command = getattr(walked.func, "view_class", None) is OcppCommandView
    assert (at_once is not None) == is_command, "found at once exactly when a command route takes it"


def test_the_routes_found_at_once_are_listed_once_for_reverse_and_the_schema():
    assert command_routes_at_once.url_patterns == []
    assert command_routes_at_once.reverse_dict.getlist(OcppCommandView) == []
