"""The OCPP message log: every frame in and out, filtered by charger, direction, type, action and time.

The table holds millions of rows, so nothing here counts or lists it whole: filters offer fixed
choices (no SELECT DISTINCT), the paginator counts at most ``CappedCountPaginator.cap`` rows, and
the answers of a page's CALLs come in one extra query.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ChangeList
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.safestring import SafeString
from ocpp.messages import MessageType
from ocpp.v16.enums import Action as V16Action
from ocpp.v201.enums import Action as V201Action

from chargepoints.admin.shared import admin_link, charger_pks_matching
from chargepoints.models import ChargePoint, OcppMessage
from chargepoints.selectors import ocpp_call_answers, ocpp_message_pair
from kernel.admin_lists import CappedList, TimeRangeFilter
from kernel.admin_mixins import SortableByChangeList

MESSAGE_TYPE_LABELS = {
    MessageType.Call: "CALL",
    MessageType.CallResult: "CALLRESULT",
    MessageType.CallError: "CALLERROR",
}
ACTIONS = sorted({action.value for action in V16Action} | {action.value for action in V201Action})


def frame_parse(frame: str) -> Any:
    """The frame as JSON, or None when it was not JSON (it is logged as received)."""
    try:
        return json.loads(frame)
    except ValueError:
        return None


def frame_pretty(frame: str) -> SafeString:
    parsed = frame_parse(frame)
    text = frame if parsed is None else json.dumps(parsed, indent=2, ensure_ascii=False)
    return format_html('<pre class="ocpp-frame">{}</pre>', text)


def answer_outcome(answer: OcppMessage) -> str:
    """How a CALL was answered: ``CALLRESULT Accepted`` or ``CALLERROR NotImplemented``."""
    parsed = frame_parse(answer.frame)
    if answer.message_type == MessageType.CallError:
        code = parsed[2] if isinstance(parsed, list) and len(parsed) > 2 else ""
        return f"CALLERROR {code}".strip()
    payload = parsed[2] if isinstance(parsed, list) and len(parsed) > 2 else None
    status = payload.get("status") if isinstance(payload, dict) else None
    return f"CALLRESULT {status}" if isinstance(status, str) else "CALLRESULT"


class ChargerFilter(admin.SimpleListFilter):
    """By charger without listing the fleet: the chargers seen last, plus the one selected.

    Any charger is reachable with the search box or ``?charge_point__id__exact=<pk>`` (links
    from a charger's page).
    """

    title = "charger"
    parameter_name = "charge_point__id__exact"
    shown = 10

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        recent = ChargePoint.objects.exclude(last_seen=None).order_by("-last_seen").only("charge_point_id")
        choices = [(str(cp.pk), cp.charge_point_id) for cp in recent[: self.shown]]
        selected = self.value()
        if selected and selected.isascii() and selected.isdigit() and selected not in {pk for pk, _ in choices}:
            charge_point = ChargePoint.objects.filter(pk=int(selected)).only("charge_point_id").first()
            if charge_point is not None:
                choices.insert(0, (selected, charge_point.charge_point_id))
        return choices

    def has_output(self) -> bool:
        return True

    def queryset(self, request: HttpRequest, queryset: QuerySet[OcppMessage]) -> QuerySet[OcppMessage]:
        value = self.value()
        if value is None:
            return queryset
        if not (value.isascii() and value.isdigit()):  # "³" is a digit to isdigit, not to int()
            raise IncorrectLookupParameters(f"Not a charger: {value!r}")
        return queryset.filter(charge_point_id=int(value))


class MessageTypeFilter(admin.SimpleListFilter):
    title = "message type"
    parameter_name = "message_type__exact"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(str(number), label) for number, label in MESSAGE_TYPE_LABELS.items()]

    def queryset(self, request: HttpRequest, queryset: QuerySet[OcppMessage]) -> QuerySet[OcppMessage]:
        value = self.value()
        if value is None:
            return queryset
        if not (value.isascii() and value.isdigit()):
            raise IncorrectLookupParameters(f"Not a message type: {value!r}")
        return queryset.filter(message_type=int(value))


class ActionFilter(admin.SimpleListFilter):
    """Every action of both OCPP versions: a fixed list, never a DISTINCT over the log."""

    title = "action"
    parameter_name = "action__exact"
    template = "admin/chargepoints/ocppmessage/collapsed_filter.html"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(action, action) for action in ACTIONS]

    def queryset(self, request: HttpRequest, queryset: QuerySet[OcppMessage]) -> QuerySet[OcppMessage]:
        value = self.value()
        return queryset if value is None else queryset.filter(action=value)


class MessageLogChangeList(SortableByChangeList):
    """Fetches the answers of the page's CALLs in one query and hangs them on the rows; sorted by
    ``sortable_by`` only."""

    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        self.result_list = list(self.result_list)
        answers = ocpp_call_answers(messages=self.result_list)
        for message in self.result_list:
            message.answer = answers.get(message.pk)


@admin.register(OcppMessage)
class OcppMessageAdmin(CappedList, admin.ModelAdmin):
    list_display = [
        "created_at",
        "charger",
        "direction",
        "type_label",
        "action",
        "unique_id",
        "outcome",
        "round_trip",
    ]
    list_filter = [ChargerFilter, "direction", MessageTypeFilter, ActionFilter, TimeRangeFilter]
    search_fields = ["charge_point__charge_point_id", "unique_id"]
    search_help_text = "A charger id (or part of one), or a message's exact unique id."
    list_select_related = ["charge_point"]
    list_per_page = 100
    sortable_by = ["created_at"]  # the one indexed order; any other sorts the whole log
    fields = ["charge_point", "direction", "type_label", "action", "unique_id", "created_at", "pretty_frame", "pair"]
    readonly_fields = fields  # type: ignore[assignment]  # the stubs let fields nest, not readonly_fields

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return MessageLogChangeList

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[OcppMessage], search_term: str
    ) -> tuple[QuerySet[OcppMessage], bool]:
        """Matches through indexes (the chargers table, then the log by charger or unique id):
        Django's ILIKE over every column would scan the whole log. The chargers looked up are the
        first ``CHARGERS_SEARCHED`` whose id contains the term (``charger_pks_matching``): a short
        term on a large fleet put every charger in the IN list."""
        term = search_term.strip()
        if not term:
            return queryset, False
        # A list, not a subquery: PostgreSQL ORs two index scans then, where a subquery makes it scan the log.
        chargers = charger_pks_matching(term)
        return queryset.filter(Q(charge_point_id__in=chargers) | Q(unique_id=term)), False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: OcppMessage | None = None) -> bool:
        return False

    @admin.display(description="charger")
    def charger(self, obj: OcppMessage) -> SafeString:
        """The charger, linking to its messages only."""
        return format_html(
            '<a href="?{}={}">{}</a>', ChargerFilter.parameter_name, obj.charge_point_id, obj.charge_point
        )

    @admin.display(description="type")
    def type_label(self, obj: OcppMessage) -> str:
        return MESSAGE_TYPE_LABELS.get(obj.message_type, "unparsed")

    @admin.display(description="answer")
    def outcome(self, obj: OcppMessage) -> SafeString | str:
        if obj.message_type != MessageType.Call:
            return ""
        answer = getattr(obj, "answer", None)
        if answer is None:
            return "no answer"
        return admin_link(answer, answer_outcome(answer))

    @admin.display(description="round trip")
    def round_trip(self, obj: OcppMessage) -> str:
        answer = getattr(obj, "answer", None)
        if answer is None:
            return ""
        return f"{(answer.created_at - obj.created_at).total_seconds() * 1000:.0f} ms"

    @admin.display(description="frame")
    def pretty_frame(self, obj: OcppMessage) -> SafeString:
        return frame_pretty(obj.frame)

    @admin.display(description="exchange")
    def pair(self, obj: OcppMessage) -> SafeString | str:
        other = ocpp_message_pair(message=obj)
        if other is None:
            return "No answer logged." if obj.message_type == MessageType.Call else "No CALL logged for this id."
        role = "The CALL" if other.message_type == MessageType.Call else f"The answer ({answer_outcome(other)})"
        elapsed = abs(other.created_at - obj.created_at).total_seconds() * 1000
        title = f"{role}, {other.get_direction_display()}, {elapsed:.0f} ms apart"
        return format_html("{}{}", admin_link(other, title), frame_pretty(other.frame))
