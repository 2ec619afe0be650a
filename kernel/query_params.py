"""The query parameters a list reads: any other is a 400 naming it, as an unknown body field is.

A misspelt filter (``/billing-records/?chargepoint_id=CP-1``, ``/chargepoints/?charge_point_id=CP-9``)
was ignored: the answer was the whole list, taken for the filtered one (every customer's bills
exported for one). A list's filters are its view's ``query_filters``; ``page``, ``page_size`` and
``format`` (DRF's format override) are every list's.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from typing import Any

from kernel.api_errors import ApiError

EVERY_LIST = ("page", "page_size", "format")
MAX_PAGE_SIZE = 1000
LAST_PAGE = "last"
_POSITIVE = re.compile(r"[0-9]{1,9}")  # ASCII digits: "³" is a digit to str.isdigit, not to int()
_DIGITS = re.compile(r"[0-9]+")
UNKNOWN = "Unknown query parameter."
TWICE = "Given more than once; this parameter takes one value."


def unknown_query_parameters_refused(
    query_params: Any,
    filters: Iterable[str],
    *,
    paginated: bool = True,
    taker: str = "This list",
    repeatable: Collection[str] = (),
) -> None:
    """Raise a 400 ValidationError naming each parameter of ``query_params`` that is neither one of
    ``filters`` nor one of ``EVERY_LIST``, with the ones that are known. A list always whole (a
    charger's connectors, a session's meter values, a site's members, a charger's configuration)
    takes ``page`` and ``page_size`` too, as one page (a client that pages every list is served).
    What is not ``paginated`` (an OCPP command, ``taker`` "A command", whose one parameter is
    ``wait``) takes ``format`` besides its ``filters``.

    A parameter given more than once is a 400 naming it too, unless it is ``repeatable`` (a charger's
    configuration: ``key`` and ``component``): the last value alone was read
    (``?charge_point_id=CP-1&charge_point_id=CP-2`` answered CP-2's sessions, taken for both's), where
    a name given twice in a JSON body is refused (``kernel.parsers``)."""
    known = {*(EVERY_LIST if paginated else ("format",)), *filters}
    unknown = sorted(name for name in query_params if name not in known)
    if unknown:
        message = f"Unknown query parameter: {', '.join(unknown)}. {taker} takes {', '.join(sorted(known))}."
        raise ApiError(400, "ValidationError", message, details={name: [UNKNOWN] for name in unknown})
    twice = sorted(name for name in query_params if name not in repeatable and len(query_params.getlist(name)) > 1)
    if twice:
        message = f"Given more than once: {', '.join(twice)}. Each takes one value."
        raise ApiError(400, "ValidationError", message, details={name: [TWICE] for name in twice})


def page_size_checked(query_params: Any) -> None:
    """A ``page_size`` that is no integer from 1 to ``MAX_PAGE_SIZE`` is a 400 naming it (DRF ignores
    the one that is no number and cuts the one above the maximum to it)."""
    given = query_params.get("page_size")
    if given is not None and not (_POSITIVE.fullmatch(given) and 0 < int(given) <= MAX_PAGE_SIZE):
        message = f"page_size must be an integer from 1 to {MAX_PAGE_SIZE}."
        raise ApiError(400, "ValidationError", message, details={"page_size": [message]})


def page_checked(query_params: Any) -> int | None:
    """The ``page`` asked for (None: none, or the last); one that is no whole number from 1 (nor
    ``last``) is a 400 naming it (DRF answered ``page=abc``, ``0`` or ``-1`` 404 "Invalid page.")."""
    given = query_params.get("page")
    if not given or given == LAST_PAGE:
        return None
    if not (_DIGITS.fullmatch(given) and int(given) > 0):
        message = "page must be an integer from 1 (or last)."
        raise ApiError(400, "ValidationError", message, details={"page": [message]})
    return int(given)


def whole_list_query_refused(
    query_params: Any, filters: Iterable[str] = (), *, repeatable: Collection[str] = ()
) -> None:
    """``unknown_query_parameters_refused`` for a list always answered whole (a charger's connectors,
    its log uploads and configuration, a session's meter values, a site's members): its one page is
    page 1 (or ``last``), a bad ``page`` or ``page_size`` is a 400 as for a paginated list, and a
    page after it a 404 NotFound: ``?page=2`` answered the whole list again, and a client paging
    until a 404 paged for ever."""
    unknown_query_parameters_refused(query_params, filters, repeatable=repeatable)
    page_size_checked(query_params)
    page = page_checked(query_params)
    if page is not None and page > 1:
        raise ApiError(404, "NotFound", "Invalid page.")
