"""Id tags, local authorization lists and reservations."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.db import transaction
from django.db.models import Func, IntegerField, Q, QuerySet
from django.db.models.functions import Lower
from django.http import HttpRequest, HttpResponse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from chargepoints.admin.shared import charger_pks_matching
from charging import selectors
from charging.admin.shared import id_tags_folded
from charging.models import IdTag, LocalAuthList, Reservation
from charging.serializers import ID_TOKEN_TYPES, id_tag_validator
from charging.services import authorization
from kernel.admin_lists import CappedList
from kernel.admin_mixins import ChangedOnThePageForm, ReadOnlyAdmin


class IdTagForm(ChangedOnThePageForm, forms.ModelForm):
    """An id tag as the API checks it: printable, no whitespace, a 2.0.1 token type, one level of
    parent. Its ``changed_data`` is what the operator changed on the page (``ChangedOnThePageForm``)."""

    token_type = forms.ChoiceField(choices=[("", "(any)"), *[(kind, kind) for kind in ID_TOKEN_TYPES]], required=False)

    def clean_id_tag(self) -> str:
        """As the API answers a tag equal but for case to another (409): named, not as the unique
        constraint's violation ("Constraint “id_tag_unique_case_insensitive” is violated."). Read
        under the name's lock (``id_tag_name_locked``), which the admin's transaction holds until
        the tag is saved: a save of the same tag by another operator, or the API, not yet committed
        is waited for, then found."""
        id_tag = str(self.cleaned_data["id_tag"])
        id_tag_validator(id_tag)
        authorization.id_tag_name_locked(id_tag=id_tag)
        registered = selectors.id_tag_find(id_tag=id_tag)
        if registered is not None and registered.pk != self.instance.pk:
            raise forms.ValidationError(
                f"Id tag {registered.id_tag!r} is already registered; id tags ignore case.", code="unique"
            )
        return id_tag

    def clean(self) -> dict[str, Any]:
        """A parent checked as ``id_tag_save`` checks it: under the tag's and its parent's row locks,
        which the admin's transaction (the change page's) holds until the tag is saved. Read without
        them, a group put in a group by a save committing meanwhile took the card all the same: a
        card in a group of a group, whose status does not reach it."""
        super().clean()
        cleaned = self.cleaned_data
        parent = cleaned.get("parent")
        if "parent" not in self.changed_data or parent is None:  # a tag nested before the rule can still be edited
            return cleaned
        try:
            with transaction.atomic():
                authorization.id_tag_parent_locked(self.instance, parent)
        except authorization.IdTagParentRefused as refused:
            self.add_error("parent", str(refused))
        return cleaned


class TokenTypeFilter(admin.SimpleListFilter):
    """The 2.0.1 token types (and none): a fixed list, not a SELECT DISTINCT over every tag."""

    title, parameter_name = "token type", "token_type"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(kind, kind) for kind in ID_TOKEN_TYPES] + [("", "(any)")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[IdTag]) -> QuerySet[IdTag]:
        value = self.value()
        return queryset if value is None else queryset.filter(token_type=value)


@admin.register(IdTag)
class IdTagAdmin(CappedList, admin.ModelAdmin):
    """A fleet's cards can be hundreds of thousands: in id tag order (any case) through the
    unique index on LOWER(id_tag), not sorted whole; at most ``CappedCountPaginator.cap`` counted;
    the token types a fixed list."""

    form = IdTagForm
    list_display = ["id_tag", "token_type", "status", "answered_status", "expiry_date", "parent", "updated_at"]
    list_filter = ["status", TokenTypeFilter]
    search_fields = ["id_tag", "description"]
    autocomplete_fields = ["parent"]
    list_select_related = ["parent"]
    readonly_fields = ["answered_status", "created_at", "updated_at"]
    ordering = [Lower("id_tag").asc()]
    sortable_by = ()  # the one order an index serves

    @admin.display(description="answered now")
    def answered_status(self, obj: IdTag) -> str:
        """What a charger presenting it is answered (its group's status and expiry applied): a card
        stored Accepted may be refused."""
        return selectors.id_tag_answered_status(tag=obj) if obj.pk is not None else ""

    def save_model(self, request: HttpRequest, obj: IdTag, form: forms.ModelForm, change: bool) -> None:
        """A change writes, as the API's (``id_tag_save``), only what the operator changed on the page,
        on the tag's row as it stands, locked: the form wrote back every field as the page showed it,
        so a card blocked (by the API, another operator) while the page was open was Accepted again
        by a change of its description."""
        if not change:
            super().save_model(request, obj, form, change)
            return
        fields = {name: form.cleaned_data[name] for name in form.changed_data if name in form.cleaned_data}
        authorization.id_tag_save(tag=obj, **fields)

    def get_deleted_objects(self, objs: Any, request: HttpRequest) -> tuple[Any, ...]:
        """The delete page and the delete action keep the API's rule (``id_tag_delete``): a tag other
        tags name as their parent is not deleted without them, which would lift its status from them;
        they are listed as protected, and Django deletes nothing while any is. Counted, as there,
        under the rows' locks (``id_tags_locked_for_delete``), held by the delete page's transaction
        and the delete action's (``response_action``) until the delete: a card made the child of
        one by a save committing meanwhile was not counted, and broke the delete's commit (500)."""
        with transaction.atomic():
            authorization.id_tags_locked_for_delete(tags=objs)
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        orphans = authorization.id_tags_delete_orphans(tags=objs)
        protected = [*protected, *(f"Id tag: {tag.id_tag} (its parent is {tag.parent})" for tag in orphans)]
        return deleted, counts, perms_needed, protected

    def response_action(
        self, request: HttpRequest, queryset: QuerySet[Any], *args: Any, **kwargs: Any
    ) -> HttpResponse | None:
        """An action (the delete action: its count of the cards and its delete) in one transaction,
        as the delete page is."""
        with transaction.atomic():
            return super().response_action(request, queryset, *args, **kwargs)


class JsonObjectSize(Func):
    """How many keys a JSON object holds, counted by the database."""

    template = "(SELECT count(*) FROM jsonb_object_keys(%(expressions)s))"
    output_field = IntegerField()

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        return self.as_sql(compiler, connection, template="(SELECT count(*) FROM json_each(%(expressions)s))", **extra)


@admin.register(LocalAuthList)
class LocalAuthListAdmin(ReadOnlyAdmin):
    list_display = ["charge_point", "version", "ocpp_version", "entry_count", "updated_at"]
    search_fields = ["charge_point__charge_point_id"]
    list_select_related = ["charge_point"]
    fields = ["charge_point", "version", "ocpp_version", "entries_table", "updated_at"]
    readonly_fields = fields  # type: ignore[assignment]  # the stubs let fields nest, not readonly_fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[LocalAuthList]:
        """Entries counted by the database, not read: a page of 100 chargers whose lists hold a
        fleet's 20,000 cards read and parsed 2,000,000 entries to show 100 numbers (a list's page
        reads its entries when it shows them)."""
        return super().get_queryset(request).defer("entries").annotate(entry_total=JsonObjectSize("entries"))

    @admin.display(description="entries")
    def entry_count(self, obj: LocalAuthList) -> int:
        return int(obj.entry_total)  # type: ignore[attr-defined]  # annotated (get_queryset)

    @admin.display(description="entries")
    def entries_table(self, obj: LocalAuthList) -> SafeString:
        if not obj.entries:
            return format_html("{}", "(empty)")
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            sorted((*selectors.local_list_key_parts(key), status) for key, status in obj.entries.items()),
        )
        return format_html("<table><tr><th>id tag</th><th>token type</th><th>status</th></tr>{}</table>", rows)


@admin.register(Reservation)
class ReservationAdmin(CappedList, ReadOnlyAdmin):
    """Kept: newest made first (the primary key: no index serves ``created_at``), at most
    ``CappedCountPaginator.cap`` counted, no date hierarchy (its years are a SELECT DISTINCT over
    the table), a search through the chargers and id tags tables."""

    list_display = [
        "reservation_id",
        "charge_point",
        "connector_id",
        "evse_id",
        "id_tag",
        "token_type",
        "status",
        "charger_status",
        "expiry_date",
        "created_at",
    ]
    list_filter = ["status"]
    search_fields = ["charge_point__charge_point_id", "id_tag", "reservation_id__exact"]
    search_help_text = "A charger id (or part of one), an id tag or a reservation id."
    list_select_related = ["charge_point"]
    readonly_fields = [f.name for f in Reservation._meta.fields]
    ordering = ["-id"]
    sortable_by = ()  # the one order an index serves

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Reservation], search_term: str
    ) -> tuple[QuerySet[Reservation], bool]:
        """The chargers and id tags matching first (an ILIKE through the join scanned every
        reservation); a reservation id as given."""
        term = search_term.strip()
        if not term:
            return queryset, False
        queryset = queryset.alias(id_tag_lower=Lower("id_tag"))
        found = Q(charge_point_id__in=charger_pks_matching(term)) | Q(id_tag_lower__in=id_tags_folded(term))
        if term.isascii() and term.isdigit() and int(term) < 2**31:
            found |= Q(reservation_id=int(term))
        return queryset.filter(found), False
