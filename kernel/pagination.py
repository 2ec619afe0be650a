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
        """DRF's, but a ``page_size`` that is no positive number is a 400 naming it (DRF ignores it)."""
        given = request.query_params.get(self.page_size_query_param)
        if given is not None and not (_POSITIVE.fullmatch(given) and int(given) > 0):
            message = f"page_size must be a positive integer (at most {self.max_page_size})."
            raise ApiError(400, "ValidationError", message, details={"page_size": [message]})
        return super().get_page_size(request)
