"""The API's content negotiation: DRF's, with the common case answered without parsing."""

from __future__ import annotations

from collections.abc import Iterable

from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request

# Accept headers that pick the first renderer when it renders JSON, as DRF's negotiation picks it.
_ANY_OR_JSON = frozenset({"*/*", "application/json"})


class JsonFirstNegotiation(DefaultContentNegotiation):
    """DRF's ``DefaultContentNegotiation``; a request without ``Accept`` (or with ``*/*`` or
    ``application/json`` alone) and without a format override gets the first renderer, if it
    renders ``application/json``, at once: the same renderer and media type DRF's parsing of the
    header gives (issue 15, a few per cent of an API process's CPU per command). Any other request
    is negotiated by DRF (406 for what no renderer gives)."""

    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        renderers = list(renderers)
        accept = request.META.get("HTTP_ACCEPT", "*/*")
        format_override = self.settings.URL_FORMAT_OVERRIDE
        if (
            renderers
            and renderers[0].media_type == "application/json"
            and accept in _ANY_OR_JSON
            and not format_suffix
            and not (format_override and format_override in request.query_params)
        ):
            return renderers[0], renderers[0].media_type
        selected: tuple[BaseRenderer, str] = super().select_renderer(request, renderers, format_suffix)
        return selected

    def filter_renderers(self, renderers: Iterable[BaseRenderer], format: str) -> list[BaseRenderer]:  # noqa: A002  # DRF's name
        """DRF's, but a format none of ``renderers`` gives (``?format=xml``) is a ``406`` naming
        ``format``: DRF's ``404 NotFound`` named the charger of ``/chargepoints/CP-1?format=xml``, a
        registered one, as not found."""
        from kernel.api_errors import NotAcceptableNaming  # imports DRF's views, which import this module

        renderers = list(renderers)
        given = [renderer for renderer in renderers if renderer.format == format]
        if not given:
            formats = ", ".join(dict.fromkeys(str(renderer.format) for renderer in renderers))
            message = f"{format!r} is not one of: {formats}."
            raise NotAcceptableNaming("format", message)
        return given
