from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.core.handlers.asgi import ASGIRequest
from django.db import transaction
from django.db.models import Q, QuerySet
from django.db.models.functions import Lower
from django.http import HttpRequest, StreamingHttpResponse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from billing import export, selectors, services
from billing.models import BillingRecord, Tariff
from billing.serializers import TariffSerializer
from billing.services import PRICING_FIELDS
from chargepoints.admin.shared import CHARGERS_SEARCHED
from chargepoints.models import ChargePoint
from charging.admin import transaction_link
from charging.admin.shared import id_tags_folded
from kernel.admin_lists import CappedList, TimeRangeFilter
from kernel.admin_mixins import ChangedOnThePageForm, RefusalsShown
from kernel.money import round_money
from kernel.streaming import in_request_thread

LINE_ITEM_COLUMNS = ["description", "quantity", "unit", "unit_price", "amount"]


class TariffForm(ChangedOnThePageForm, forms.ModelForm):
    """A tariff as the API checks it (``TariffSerializer``: no negative price, an ISO 4217 code, a fee
    in the currency's minor unit, a validity that ends after it starts): one rule set for both. Its
    ``changed_data`` is what the operator changed on the page (``ChangedOnThePageForm``)."""

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        # A change: what the operator changed, against the tariff as it stands (``TariffAdmin.save_model``
        # writes only that); checked with every value the page showed, a start after an end the API set
        # meanwhile passed, and the save broke the validity constraint (a 500).
        names = self.changed_data if self.instance.pk else list(cleaned)
        data = {name: cleaned[name] for name in names if name in cleaned and name in TariffSerializer.Meta.fields}
        checked = TariffSerializer(instance=self.instance if self.instance.pk else None, data=data, partial=True)
        if not checked.is_valid():
            for name, messages in checked.errors.items():
                for message in messages:
                    self.add_error(name if name in self.fields else None, str(message))
        elif "currency" in checked.validated_data:
            cleaned["currency"] = checked.validated_data["currency"]  # upper case, as the API stores it
        if self.instance.pk:
            self._prices_fixed_refused(cleaned)
        return cleaned

    def _prices_fixed_refused(self, cleaned: dict[str, Any]) -> None:
        """A price the operator changed on a page that showed it editable, fixed since (a session
        started under the tariff, a billing record priced with it): the field's error, as
        ``tariff_save`` refuses it (``TariffAdmin.get_readonly_fields`` keeps such a field in the
        form at the save; left out, the price typed was dropped without a word)."""
        changed = [
            name
            for name in PRICING_FIELDS
            if name in self.changed_data and name in cleaned and cleaned[name] != getattr(self.instance, name)
        ]
        for name in services.tariff_prices_fixed(tariff=self.instance, changed=changed):
            self.add_error(
                name,
                "Fixed since the page was opened: the tariff priced billing records or prices an open session."
                " Set its valid_to and create a new tariff.",
            )


@admin.register(Tariff)
class TariffAdmin(RefusalsShown, admin.ModelAdmin):
    """A session a charger started under the tariff after the page's check (its delete's
    confirmation, a change of its prices) is the refusal's message, not a 500 (``RefusalsShown``;
    a "Delete selected" deletes all or none)."""

    form = TariffForm
    refusals = (services.TariffInUse, services.TariffPricesFixed)
    list_display = [
        "name",
        "currency",
        "price_per_kwh",
        "price_per_minute",
        "fee",
        "idle_fee_per_minute",
        "idle_grace_minutes",
        "is_default",
        "valid_from",
        "valid_to",
    ]
    list_filter = ["currency", "is_default"]
    search_fields = ["name", "currency"]
    readonly_fields = ["created_at", "updated_at"]

    @admin.display(description="session fee", ordering="session_fee")
    def fee(self, obj: Tariff) -> str:
        """With its currency's decimals ("0.50" EUR, "0.125" KWD): the column keeps 3 for all."""
        return str(round_money(obj.session_fee, obj.currency))

    def save_model(self, request: HttpRequest, obj: Tariff, form: forms.ModelForm, change: bool) -> None:
        """A change writes, as the API's (``tariff_save``), only what the operator changed on the page,
        on the tariff's row as it stands, locked: the form wrote back every field as the page showed
        it, so a tariff ended (``valid_to``) or made the default by the API while the page was open
        lost both to a change of its name."""
        if not change:
            super().save_model(request, obj, form, change)
            return
        fields = {name: form.cleaned_data[name] for name in form.changed_data if name in form.cleaned_data}
        services.tariff_save(tariff=obj, **fields)

    def get_deleted_objects(self, objs: Any, request: HttpRequest) -> Any:
        """As ``services.tariff_delete`` refuses: a tariff an open session started under is shown
        protected by it (read, not written: the confirmation page is a GET)."""
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        sessions = selectors.open_sessions_started_under(tariff_ids={tariff.pk for tariff in objs})
        protected = [*protected, *(f"Open session: {session}" for session in sessions)]
        return deleted, counts, perms_needed, protected

    def delete_model(self, request: HttpRequest, obj: Tariff) -> None:
        services.tariff_delete(tariff=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Tariff]) -> None:
        with transaction.atomic():
            for tariff in queryset:
                services.tariff_delete(tariff=tariff)

    def get_readonly_fields(self, request: HttpRequest, obj: Tariff | None = None) -> list[str]:
        """Its prices are fixed once it priced a billing record, or while an open session started
        under it (``services.tariff_prices_fixed``). At a save, a price the page showed editable
        (its ``initial-`` input came back) stays in the form: a change of one fixed since the page
        was opened is the field's error (``TariffForm``), not dropped."""
        fixed = services.tariff_prices_fixed(tariff=obj, changed=list(PRICING_FIELDS)) if obj is not None else []
        if request.method == "POST":
            fixed = [name for name in fixed if not _shown_editable(name, request)]
        return [*fixed, *self.readonly_fields]


def _shown_editable(name: str, request: HttpRequest) -> bool:
    """Whether the page posted had field ``name`` as an input: its value as shown came back
    (``ChangedOnThePageForm``'s hidden ``initial-`` input; a date and time's in two parts)."""
    return f"initial-{name}" in request.POST or f"initial-{name}_0" in request.POST


class CurrencyFilter(admin.SimpleListFilter):
    """The tariffs' currencies (a few rows), not a SELECT DISTINCT over every billing record."""

    title, parameter_name = "currency", "currency"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        currencies = Tariff.objects.exclude(currency="").order_by("currency").values_list("currency", flat=True)
        return [(currency, currency) for currency in currencies.distinct()] + [("", "(no tariff)")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[BillingRecord]) -> QuerySet[BillingRecord]:
        value = self.value()
        return queryset if value is None else queryset.filter(currency=value)


class StoppedTimeFilter(TimeRangeFilter):
    """The message log's time filter, on the session's stop (``?last=24h``, or explicit bounds)."""

    since_parameter = "stopped_at__gte"
    until_parameter = "stopped_at__lt"


@admin.register(BillingRecord)
class BillingRecordAdmin(CappedList, admin.ModelAdmin):
    """One per ended session, kept: nothing here counts or sorts the table whole. Newest stop first
    (``billing_record_stopped``, the one sortable column), at most ``CappedCountPaginator.cap``
    counted, the tariffs' currencies and a time filter instead of a SELECT DISTINCT over the records
    for each (the currency filter, the date hierarchy's years), a search by indexes: a charger id
    (or part of one) through the chargers table, an id tag (a registered one containing the term,
    or the term itself, any case)."""

    list_display = [
        "session",
        "charge_point_identity",
        "id_tag",
        "currency",
        "energy_wh",
        "total_amount",
        "needs_review",
        "stopped_at",
    ]
    list_filter = [CurrencyFilter, "needs_review", StoppedTimeFilter]
    search_fields = ["charge_point_identity", "id_tag"]
    search_help_text = "A charger id (or part of one) or an id tag."
    list_select_related = ["transaction"]
    sortable_by = ("stopped_at",)  # the order an index serves
    fields = [
        "session",
        "charge_point_identity",
        "id_tag",
        "tariff",
        "currency",
        "energy_wh",
        "started_at",
        "stopped_at",
        "duration_seconds",
        "charging_seconds",
        "idle_seconds",
        "line_items_table",
        "total_amount",
        "needs_review",
        "created_at",
        "updated_at",
    ]
    readonly_fields = fields  # type: ignore[assignment]  # the stubs let fields nest, not readonly_fields
    actions = ["download_csv"]

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[BillingRecord], search_term: str
    ) -> tuple[QuerySet[BillingRecord], bool]:
        """The chargers and registered id tags matching first, then their records by
        ``billing_record_charger`` and ``billing_record_id_tag_lower`` (an ILIKE of either scanned
        every record)."""
        term = search_term.strip()
        if not term:
            return queryset, False
        matching = ChargePoint.objects.filter(charge_point_id__icontains=term).order_by("charge_point_id")
        chargers = matching.values_list("charge_point_id", flat=True)[:CHARGERS_SEARCHED]
        queryset = queryset.alias(id_tag_lower=Lower("id_tag"))
        found = Q(charge_point_identity__in=[term, *chargers]) | Q(id_tag_lower__in=id_tags_folded(term))
        return queryset.filter(found), False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: BillingRecord | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: BillingRecord | None = None) -> bool:
        return False

    @admin.display(description="transaction", ordering="transaction")
    def session(self, obj: BillingRecord) -> SafeString | str:
        return transaction_link(obj.transaction)

    @admin.display(description="total")
    def total_amount(self, obj: BillingRecord) -> str:
        """The total with its currency's decimals (the column keeps 3 for all: KWD has fils)."""
        return str(round_money(obj.total, obj.currency))

    @admin.display(description="line items")
    def line_items_table(self, obj: BillingRecord) -> SafeString | str:
        if not obj.line_items:
            return "-"
        head = format_html_join("", "<th>{}</th>", ((column,) for column in LINE_ITEM_COLUMNS))
        rows = format_html_join(
            "",
            "<tr>{}</tr>",
            (
                (format_html_join("", "<td>{}</td>", ((line.get(column, ""),) for column in LINE_ITEM_COLUMNS)),)
                for line in obj.line_items
            ),
        )
        return format_html("<table><tr>{}</tr>{}</table>", head, rows)

    @admin.action(description="Download selected as CSV", permissions=["view"])
    def download_csv(self, request: HttpRequest, queryset: QuerySet[BillingRecord]) -> StreamingHttpResponse:
        """Streamed as the API's export, ``export.CHUNK_ROWS`` records read and sent at a time: every
        record of the list (200,000) was read as instances and rendered whole before the first byte
        left (11 s, 22 MB held, and the instances)."""
        records = queryset.select_related("transaction", "tariff").order_by("stopped_at", "id")
        chunks = export.line_chunks(records.iterator(chunk_size=export.CHUNK_ROWS), export.CHUNK_ROWS)
        content = in_request_thread(chunks) if isinstance(request, ASGIRequest) else chunks
        response = StreamingHttpResponse(content, content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="billing-records.csv"'
        return response
