"""Admin list pieces for tables that grow without bound (the message log, meter samples, commands,
sessions, billing records, webhook deliveries...): nothing counts or lists such a table whole.

- ``TimeRangeFilter``: a time window (a preset relative to now, or explicit bounds) instead of a
  date hierarchy, whose years and months are a SELECT DISTINCT over the table.
- ``CappedCountPaginator``: counts at most ``cap`` rows instead of COUNT(*) over millions.
- ``CappedList``: a ModelAdmin's list with that paginator, no full count, no facets (a COUNT per
  filter choice), and a hand-written ``?o=`` kept to ``sortable_by`` (``SortableByChangeList``).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ChangeList
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.functional import cached_property

from kernel.admin_mixins import SortableByChangeList

TIME_PRESETS = {
    "15m": ("Last 15 minutes", timedelta(minutes=15)),
    "1h": ("Last hour", timedelta(hours=1)),
    "24h": ("Last 24 hours", timedelta(hours=24)),
    "7d": ("Last 7 days", timedelta(days=7)),
}


class TimeRangeFilter(admin.ListFilter):
    """A preset relative to now (``?last=1h``), or explicit bounds for links
    (``?created_at__gte=2026-05-01T10:00:00Z&created_at__lt=2026-05-01T11:00:00Z``)."""

    title = "time"
    preset_parameter = "last"
    since_parameter = "created_at__gte"
    until_parameter = "created_at__lt"

    def __init__(self, request: HttpRequest, params: dict[str, list[str]], model: Any, model_admin: Any) -> None:
        super().__init__(request, params, model, model_admin)
        for name in self.expected_parameters():
            if name in params:
                self.used_parameters[name] = params.pop(name)[-1]

    def expected_parameters(self) -> list[str]:  # type: ignore[override]  # the stubs allow None; ours never is
        return [self.preset_parameter, self.since_parameter, self.until_parameter]

    def has_output(self) -> bool:
        return True

    def bounds(self) -> tuple[datetime | None, datetime | None]:
        preset = self.used_parameters.get(self.preset_parameter)
        if preset is not None:
            if preset not in TIME_PRESETS:
                raise IncorrectLookupParameters(f"Unknown time range: {preset!r}")
            return timezone.now() - TIME_PRESETS[preset][1], None
        return self._moment(self.since_parameter), self._moment(self.until_parameter)

    def _moment(self, name: str) -> datetime | None:
        raw = self.used_parameters.get(name)
        if not isinstance(raw, str):  # absent (None)
            return None
        # An unencoded "+00:00" in a hand-written link arrives as " 00:00".
        text = raw.strip().replace(" ", "+") if "T" in raw else raw.strip()
        try:
            moment = parse_datetime(text)
        except ValueError:
            moment = None
        if moment is None:
            raise IncorrectLookupParameters(f"{name} is not a date and time: {raw!r}")
        return moment if timezone.is_aware(moment) else timezone.make_aware(moment, UTC)

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        """The bounds on the time the parameters name (``created_at``; a subclass's own)."""
        since, until = self.bounds()
        if since is not None:
            queryset = queryset.filter(**{self.since_parameter: since})
        if until is not None:
            queryset = queryset.filter(**{self.until_parameter: until})
        return queryset

    def choices(self, changelist: ChangeList) -> Iterator[dict[str, Any]]:
        everything = self.expected_parameters()
        choices = [
            {
                "selected": not self.used_parameters,
                "query_string": changelist.get_query_string(remove=everything),
                "display": "Any time",
            }
        ]
        for key, (label, _) in TIME_PRESETS.items():
            choices.append(
                {
                    "selected": self.used_parameters.get(self.preset_parameter) == key,
                    "query_string": changelist.get_query_string({self.preset_parameter: key}, remove=everything),
                    "display": label,
                }
            )
        since, until = (self.used_parameters.get(name) for name in (self.since_parameter, self.until_parameter))
        if since or until:
            choices.append(
                {
                    "selected": True,
                    "query_string": changelist.get_query_string(),
                    "display": f"From {since or 'the start'} to {until or 'now'}",
                }
            )
        return iter(choices)


class CappedCountPaginator(Paginator):
    """Counts at most ``cap`` rows: COUNT(*) over millions of log rows would take seconds."""

    cap = 10_000

    @cached_property
    def count(self) -> int:
        return self.object_list[: self.cap].count()  # type: ignore[attr-defined]  # a QuerySet: the stubs say any sequence

    @property
    def capped(self) -> bool:
        return self.count >= self.cap


class CappedList:
    """Mixed in before ``admin.ModelAdmin``: its list page counts at most ``CappedCountPaginator.cap``
    rows, never the whole table (nor each filter choice's rows), and sorts only as ``sortable_by`` says."""

    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    paginator: ClassVar[type] = CappedCountPaginator

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return SortableByChangeList
