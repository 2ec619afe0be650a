"""Admin base classes every app's admin pages share."""

from __future__ import annotations

from typing import Any, ClassVar

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ORDER_VAR, ChangeList
from django.contrib.admin.widgets import AutocompleteSelect, AutocompleteSelectMultiple
from django.core.exceptions import ValidationError
from django.db import models
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect


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


class RefusalsShown:
    """Mixed in before ``admin.ModelAdmin``: a refusal (one of ``refusals``) a service raises at a
    page's save, delete or action, when the page's own check passed but the row changed since (a
    session started on a connector between the delete's confirmation and the delete), is the
    page's error message, the page shown again, nothing written, not a 500. A save and a delete run
    in one database transaction (Django's); an action whose writes must be all or none makes its
    own (a ``delete_queryset`` in one)."""

    refusals: ClassVar[tuple[type[Exception], ...]] = ()

    def changeform_view(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return super().changeform_view(request, *args, **kwargs)  # type: ignore[misc]  # a ModelAdmin's
        except self.refusals as refusal:
            return self._refused(request, refusal)

    def delete_view(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return super().delete_view(request, *args, **kwargs)  # type: ignore[misc]  # a ModelAdmin's
        except self.refusals as refusal:
            return self._refused(request, refusal)

    def changelist_view(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return super().changelist_view(request, *args, **kwargs)  # type: ignore[misc]  # a ModelAdmin's
        except self.refusals as refusal:
            return self._refused(request, refusal)

    def refusal_message(self, refusal: Exception) -> str:
        """The page's message for ``refusal``: its text, unless an admin says more."""
        return str(refusal)

    def _refused(self, request: HttpRequest, refusal: Exception) -> HttpResponse:
        self.message_user(request, self.refusal_message(refusal), messages.ERROR)  # type: ignore[attr-defined]  # a ModelAdmin's
        return HttpResponseRedirect(request.get_full_path())


class ChangedOnThePageForm(forms.BaseForm):
    """Mixed in before ``forms.ModelForm``: ``changed_data`` is what the operator changed on the page,
    not what differs from the row as it stands when the form comes back. Each field carries the
    value the page showed (Django's hidden ``initial-`` input), so a save that writes only
    ``changed_data`` leaves alone a field another save changed while the page was open: without
    it, every field the form holds was written back as the page showed it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for field in self.fields.values():  # this form's own copies
            field.show_hidden_initial = True

    def _post_clean(self) -> None:
        """The model's own checks (its constraints, uniqueness) on a saved row as it stands with
        what the operator changed, as it is saved: with every value the page showed, a change
        valid on the row was refused for a value the page showed and the row no longer has (a start
        after the end the page showed, before the later one the API set meanwhile). A new row's
        are every value the page posted: one not saved yet (``_state.adding``; its id may be set
        already, a UUID's default), whose values left as a prefilled page showed them were dropped."""
        instance = getattr(self, "instance", None)
        if instance is None or instance._state.adding:
            super()._post_clean()  # type: ignore[misc]  # a ModelForm's
            return
        typed, changed = self.cleaned_data, set(self.changed_data)
        self.cleaned_data = {name: value for name, value in typed.items() if name in changed}
        try:
            super()._post_clean()  # type: ignore[misc]  # a ModelForm's
        finally:
            checked = self.cleaned_data  # less a changed field the model refused
            self.cleaned_data = {name: value for name, value in typed.items() if name not in changed or name in checked}


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


class LookupsChecked:
    """Any list page answers a lookup of a value beyond its column (a hand-written
    ``?created_at__year=2147483648`` on a list without a date hierarchy, whose bounds overflow a
    date when the page counts its rows) as Django answers other bad filters (``?e=1``), not with
    a 500."""

    def get_changelist_instance(self, request: HttpRequest) -> ChangeList:
        try:
            return super().get_changelist_instance(request)  # type: ignore[misc]  # a ModelAdmin's
        except (OverflowError, ValueError) as error:
            raise IncorrectLookupParameters(error) from error


class SortableByChangeList(ChangeList):
    """A list page sorted only by the columns its admin's ``sortable_by`` names: Django hides the
    other headers' sort links but still sorts by any column a hand-written ``?o=`` names, which on a
    table of millions sorts the whole table (seconds per page). Those are dropped from ``o``."""

    def get_ordering(self, request: HttpRequest, queryset: Any) -> list[Any]:
        given = self.params.get(ORDER_VAR)
        if given is not None:
            kept = ".".join(part for part in given.split(".") if self._sortable(part))
            if kept:
                self.params[ORDER_VAR] = kept
            else:
                del self.params[ORDER_VAR]
        return super().get_ordering(request, queryset)

    def _sortable(self, part: str) -> bool:
        index = part.rpartition("-")[2]
        if not (index.isascii() and index.isdigit() and int(index) < len(self.list_display)):
            return False
        return self.sortable_by is None or self.list_display[int(index)] in self.sortable_by


def value_of_column(field: models.Field[Any, Any], value: Any) -> bool:
    """Whether ``value``, as a page posted it, is a value of ``field``'s column (an id a query can
    look up): not ``abc`` for a numeric id, a number beyond its column, a NUL in a string."""
    if isinstance(value, str) and "\x00" in value:
        return False
    try:
        field.run_validators(field.to_python(value))
    except (ValidationError, ValueError, TypeError):
        return False
    return True


class _ParsedSelection:
    """An autocomplete box shows again only the values its field can look up: Django's looked every
    posted value up to label it, and a value its column cannot hold (``parent=abc``, a pasted
    ``tariff``) raised at the query, a 500 where the form had the field's error to show."""

    def optgroups(self, name: str, value: Any, attr: Any = None) -> Any:
        choices: Any = self.choices  # type: ignore[attr-defined]  # a Select's
        model = choices.queryset.model
        to_field = getattr(self.field.remote_field, "field_name", None)  # type: ignore[attr-defined]  # an AutocompleteMixin's
        target = model._meta.get_field(to_field) if to_field else model._meta.pk
        empty = choices.field.empty_values
        shown = [v for v in value if str(v) in empty or value_of_column(target, v)]
        return super().optgroups(name, shown, attr)  # type: ignore[misc]  # an AutocompleteMixin's


class CheckedAutocompleteSelect(_ParsedSelection, AutocompleteSelect):
    pass


class CheckedAutocompleteSelectMultiple(_ParsedSelection, AutocompleteSelectMultiple):
    pass


class PickersChecked:
    """Mixed in before a ModelAdmin or an inline (``CsmsAdminSite.register`` gives it to every
    admin and its inlines): its autocomplete boxes (``autocomplete_fields``) are
    ``CheckedAutocompleteSelect``'s, so a value no row can have is the field's error on the page
    shown again ("Select a valid choice"), not a 500."""

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if "widget" not in kwargs and db_field.name in self.get_autocomplete_fields(request):  # type: ignore[attr-defined]  # a ModelAdmin's
            kwargs["widget"] = CheckedAutocompleteSelect(db_field, self.admin_site, using=kwargs.get("using"))  # type: ignore[attr-defined]  # a ModelAdmin's
        return super().formfield_for_foreignkey(db_field, request, **kwargs)  # type: ignore[misc]  # a ModelAdmin's

    def formfield_for_manytomany(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if "widget" not in kwargs and db_field.name in self.get_autocomplete_fields(request):  # type: ignore[attr-defined]  # a ModelAdmin's
            kwargs["widget"] = CheckedAutocompleteSelectMultiple(db_field, self.admin_site, using=kwargs.get("using"))  # type: ignore[attr-defined]  # a ModelAdmin's
        return super().formfield_for_manytomany(db_field, request, **kwargs)  # type: ignore[misc]  # a ModelAdmin's


class SelectionChecked:
    """Mixed in before a ModelAdmin (``CsmsAdminSite.register`` gives it to every admin): an action
    posted with a selected row no row can be (``_selected_action=abc`` for a numeric id, a number
    beyond the column) is refused, nothing done, with a message on the list, as Django answers an
    action with no row selected: the rows were looked up as posted, and the query raised (a 500 on
    every list's "Delete selected" and every action)."""

    def response_action(self, request: HttpRequest, queryset: Any) -> HttpResponse | None:
        pk = self.model._meta.pk  # type: ignore[attr-defined]  # a ModelAdmin's
        unknown = [value for value in request.POST.getlist(ACTION_CHECKBOX_NAME) if not value_of_column(pk, value)]
        if unknown:
            shown = ", ".join(repr(value[:40]) for value in unknown[:5])
            more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
            self.message_user(  # type: ignore[attr-defined]  # a ModelAdmin's
                request,
                f"No row of this list has the id {shown}{more}: nothing was done. Select the rows on the list.",
                messages.WARNING,
            )
            return HttpResponseRedirect(request.get_full_path())
        return super().response_action(request, queryset)  # type: ignore[misc]  # a ModelAdmin's
