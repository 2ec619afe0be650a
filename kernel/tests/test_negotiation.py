"""The API's content negotiation picks what DRF's picks, or refuses what it refuses."""

from __future__ import annotations

import pytest
from django.http import Http404
from rest_framework import exceptions
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BaseRenderer, BrowsableAPIRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from kernel.negotiation import JsonFirstNegotiation

ACCEPTS = [None, "*/*", "application/json", "", "text/html", "application/json; indent=4", "text/html, */*;q=0.1"]
RENDERER_LISTS = [[JSONRenderer()], [BrowsableAPIRenderer(), JSONRenderer()], [JSONRenderer(), BrowsableAPIRenderer()]]


def chosen(
    negotiation: DefaultContentNegotiation, path: str, accept: str | None, renderers: list[BaseRenderer]
) -> object:
    factory = APIRequestFactory()
    request = Request(factory.get(path) if accept is None else factory.get(path, HTTP_ACCEPT=accept))
    try:
        renderer, media_type = negotiation.select_renderer(request, renderers)
    except exceptions.NotAcceptable:  # ours for a format no renderer gives too (DRF's 404 named the path as gone)
        return "406"
    except Http404:  # DRF's for a format no renderer gives
        return "406"
    return type(renderer).__name__, media_type


@pytest.mark.parametrize("accept", ACCEPTS)
@pytest.mark.parametrize("renderers", RENDERER_LISTS, ids=["json", "browsable-first", "json-first"])
@pytest.mark.parametrize("path", ["/api/v1/commands/", "/api/v1/commands/?format=api"])
def test_the_same_renderer_and_media_type_as_drf(accept, renderers, path):
    assert chosen(JsonFirstNegotiation(), path, accept, renderers) == chosen(
        DefaultContentNegotiation(), path, accept, renderers
    )
