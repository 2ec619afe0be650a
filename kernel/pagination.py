import re
from typing import Any

from rest_framework.pagination import PageNumberPagination

from kernel.api_errors import ApiError
from kernel.query_params import unknown_query_parameters_refused

_POSITIVE = re.compile(r"[0-9]{1,9}")  # ASCII digits: "³" is a digit to str.isdigit, not to int()
_DIGITS = re.compile(r"[0-9]+")


class Pagination(PageNumberPagination):
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000

    def paginate_queryset(self, queryset: Any, request: Any, view: Any = None) -> list[Any] | None:
        """DRF's, after refusing a query parameter the list does not read (``kernel.query_params``):
        its filters are the view's ``query_filters`` (its ``list`` action's; another list, e.g. an
        ``@action``, takes none)."""
        filters = getattr(view, "query_filters", ()) if getattr(view, "action", "list") == "list" else ()
        unknown_query_parameters_refused(request.query_params, filters)
        return super().paginate_queryset(queryset, request, view)

    def get_page_size(self, request: Any) -> int | None:
        """DRF's, but a ``page_size`` that is no integer from 1 to ``max_page_size`` is a 400 naming
        it (DRF ignores the one that is no number and cuts the one above the maximum to it)."""
        given = request.query_params.get(self.page_size_query_param)
        if given is not None and not (_POSITIVE.fullmatch(given) and 0 < int(given) <= self.max_page_size):
            message = f"page_size must be an integer from 1 to {self.max_page_size}."
            raise ApiError(400, "ValidationError", message, details={"page_size": [message]})
        return super().get_page_size(request)

    def get_page_number(self, request: Any, paginator: Any) -> Any:
        """DRF's, but a ``page`` that is no whole number from 1 (nor ``last``) is a 400 naming it, as
        a bad ``page_size`` is (DRF answered ``page=abc``, ``0`` or ``-1`` 404 "Invalid page."); a
        page after the last stays a 404."""
        given = request.query_params.get(self.page_query_param)
        if given and given not in self.last_page_strings and not (_DIGITS.fullmatch(given) and int(given) > 0):
            message = "page must be an integer from 1 (or last)."
            raise ApiError(400, "ValidationError", message, details={"page": [message]})
        return super().get_page_number(request, paginator)

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        """DRF's, with the bounds above: a client generated from the schema sends no 400."""
        parameters: list[dict[str, Any]] = super().get_schema_operation_parameters(view)
        bounds = {
            self.page_query_param: {
                "anyOf": [{"type": "integer", "minimum": 1}, {"enum": list(self.last_page_strings)}],
            },
            self.page_size_query_param: {"type": "integer", "minimum": 1, "maximum": self.max_page_size},
        }
        for parameter in parameters:
            parameter["schema"] = bounds.get(parameter["name"], parameter["schema"])
            if parameter["name"] == self.page_size_query_param:
                parameter["description"] = f"From 1 to {self.max_page_size}; {self.page_size} if not given."
        return parameters
