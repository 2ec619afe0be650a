"""Admin base classes every app's admin pages share."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ChangeList
from django.http import HttpRequest


class ReadOnlyMixin:
    """Rows the CSMS writes from what chargers send: operators look, they do not type."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ReadOnlyAdmin(ReadOnlyMixin, admin.ModelAdmin):
    pass


class _DateHierarchyCheckedChangeList(ChangeList):
    def get_filters(self, request: HttpRequest) -> Any:
        try:
            return super().get_filters(request)
        except (OverflowError, ValueError) as error:  # a year beyond any date (2147483648, 9999 + 1)
            raise IncorrectLookupParameters(error) from error


class DateHierarchyChecked:
    """A list page with a ``date_hierarchy`` answers a year or month beyond any date
    (``?started_at__year=2147483648``) as Django answers other bad filters (the list, ``?e=1``),
    not with a 500."""

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return _DateHierarchyCheckedChangeList
