from typing import Any

from rest_framework.pagination import PageNumberPagination

from kernel.query_params import (
    LAST_PAGE,
    MAX_PAGE_SIZE,
    page_checked,
    page_size_checked,
    unknown_query_parameters_refused,
)


class Pagination(PageNumberPagination):
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = MAX_PAGE_SIZE
    last_page_strings = (LAST_PAGE,)

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
        page_size_checked(request.query_params)
        return super().get_page_size(request)

    def get_page_number(self, request: Any, paginator: Any) -> Any:
        """DRF's, but a ``page`` that is no whole number from 1 (nor ``last``) is a 400 naming it, as
        a bad ``page_size`` is (DRF answered ``page=abc``, ``0`` or ``-1`` 404 "Invalid page."); a
        page after the last stays a 404."""
        page_checked(request.query_params)
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
