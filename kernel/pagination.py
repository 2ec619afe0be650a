import re
from typing import Any

from rest_framework.pagination import PageNumberPagination

from kernel.api_errors import ApiError

_POSITIVE = re.compile(r"[0-9]{1,9}")  # ASCII digits: "³" is a digit to str.isdigit, not to int()


class Pagination(PageNumberPagination):
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000

    def get_page_size(self, request: Any) -> int | None:
        """DRF's, but a ``page_size`` that is no integer from 1 to ``max_page_size`` is a 400 naming
        it (DRF ignores the one that is no number and cuts the one above the maximum to it)."""
        given = request.query_params.get(self.page_size_query_param)
        if given is not None and not (_POSITIVE.fullmatch(given) and 0 < int(given) <= self.max_page_size):
            message = f"page_size must be an integer from 1 to {self.max_page_size}."
            raise ApiError(400, "ValidationError", message, details={"page_size": [message]})
        return super().get_page_size(request)
