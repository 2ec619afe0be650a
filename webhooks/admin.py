"""Webhook subscriptions and the delivery outbox: what was sent, each attempt, and re-sending."""

from __future__ import annotations

import contextlib
import json
import uuid
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import URLPattern, path, reverse
from django.utils.html import escape, format_html
from django.utils.safestring import SafeString
from django.views.decorators.http import require_POST

from kernel.admin_lists import CappedList, TimeRangeFilter
from kernel.admin_mixins import ChangedOnThePageForm, ReadOnlyMixin
from webhooks.models import (
    DeliveryState,
    EventType,
    WebhookAttempt,
    WebhookDelivery,
    WebhookSubscription,
    event_types_once,
    event_types_validate,
)
from webhooks.services import (
    webhook_deliveries_resend,
    webhook_delivery_resend,
    webhook_subscription_delete,
    webhook_subscription_unwanted_dropped,
    webhook_subscription_update,
)
from webhooks.signing import secret_new
from webhooks.url_safety import UnsafeWebhookUrl, webhook_url_check, webhook_url_redacted

STATE_COLOURS: dict[str, str] = {
    DeliveryState.PENDING: "#8a6d00",
    DeliveryState.DELIVERED: "#1e7b34",
    DeliveryState.FAILED: "#b3261e",
}

# A re-send leaves a delivery a worker is sending right now to that attempt (``webhook_deliveries_resend``).
BEING_SENT_ONE = (
    "The delivery is being sent right now: it was left to that attempt. Re-send it once the attempt is recorded."
)
BEING_SENT_MANY = (
    "{count} of the selected deliveries are being sent right now: they were left to that attempt. "
    "Re-send them once their attempts are recorded."
)


def stored_events(events: Any) -> list[str]:
    """A subscription's stored ``events`` as names, whatever an earlier raw-JSON form let in."""
    if not events:
        return []
    return [str(name) for name in events] if isinstance(events, list) else [str(events)]


class EventTypesField(forms.MultipleChoiceField):
    """A checkbox per EventType, labelled with the name the API and the deliveries use; whatever
    is posted is judged by the API's rule (``event_types_validate``), so a name the CSMS never
    sends is refused."""

    widget = forms.CheckboxSelectMultiple

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(choices=[(name, name) for name in EventType.values], **kwargs)

    def to_python(self, value: Any) -> list[str]:
        return event_types_once(super().to_python(value))

    def validate(self, value: Any) -> None:
        event_types_validate(value)  # instead of the field's own checks, which would answer first


class WebhookSubscriptionForm(ChangedOnThePageForm, forms.ModelForm):
    """The URL passes the same check as in the API (webhooks.url_safety), the events the same rule.
    Its ``changed_data`` is what the operator changed on the page (``ChangedOnThePageForm``)."""

    url = forms.URLField(max_length=2000, assume_scheme="https", widget=forms.URLInput(attrs={"class": "vURLField"}))
    events = EventTypesField(help_text="The events this receiver is sent.")

    class Meta:
        model = WebhookSubscription
        fields = ["url", "events", "active", "description"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        retired = [name for name in stored_events(self.initial.get("events")) if name not in EventType.values]
        if retired:  # the admin shows help texts as HTML
            self.fields["events"].help_text += escape(f" Not event types, removed when saved: {', '.join(retired)}.")

    def clean_url(self) -> str:
        url = self.cleaned_data["url"]
        try:
            webhook_url_check(url)
        except UnsafeWebhookUrl as unsafe:
            raise forms.ValidationError(str(unsafe)) from None
        return url


@admin.register(WebhookSubscription)
class WebhookSubscriptionAdmin(admin.ModelAdmin):
    """Whoever may not change subscriptions (the support and operator groups) reads each URL
    without its secrets (``webhook_url_redacted``) and cannot search in it either."""

    form = WebhookSubscriptionForm
    list_display = ["url", "event_list", "active", "created_at"]
    list_filter = ["active"]
    search_fields = ["url", "description"]

    def get_list_display(self, request: HttpRequest) -> list[Any]:
        if self.has_change_permission(request):
            return list(self.list_display)
        return ["url_redacted" if name == "url" else name for name in self.list_display]

    def get_search_fields(self, request: HttpRequest) -> list[str]:
        if self.has_change_permission(request):
            return list(self.search_fields)
        return [name for name in self.search_fields if name != "url"]

    def get_fields(self, request: HttpRequest, obj: WebhookSubscription | None = None) -> list[Any]:
        fields = list(super().get_fields(request, obj))
        if self.has_change_permission(request, obj):
            return fields
        return ["url_redacted" if name == "url" else name for name in fields]

    def get_readonly_fields(self, request: HttpRequest, obj: WebhookSubscription | None = None) -> list[str]:
        return [*super().get_readonly_fields(request, obj), "url_redacted"]

    @admin.display(description="url", ordering="url")
    def url_redacted(self, subscription: WebhookSubscription) -> str:
        return webhook_url_redacted(subscription.url)

    @admin.display(description="events")
    def event_list(self, subscription: WebhookSubscription) -> str:
        return ", ".join(stored_events(subscription.events))

    def get_deleted_objects(
        self, objs: Any, request: HttpRequest
    ) -> tuple[list[Any], dict[str, int], set[str], list[Any]]:
        """The subscriptions and how many deliveries go with them, not each delivery and attempt
        listed: a receiver's 1,000,000 deliveries made the confirmation page 188 MB (86 s)."""
        subscriptions = list(objs)
        deliveries = WebhookDelivery.objects.filter(subscription__in=subscriptions).count()
        listed: list[Any] = [format_html("Webhook subscription: {}", self.url_redacted(s)) for s in subscriptions]
        if deliveries:
            listed.append(f"{deliveries} webhook deliveries, with their attempts")
        counts = {"webhook subscriptions": len(subscriptions), "webhook deliveries": deliveries}
        perms_needed = set() if self.has_delete_permission(request) else {"webhook subscription"}
        if deliveries and not request.user.has_perm("webhooks.delete_webhookdelivery"):
            perms_needed.add("webhook delivery")  # as Django's cascade asks
        return listed, counts, perms_needed, []

    def delete_model(self, request: HttpRequest, obj: WebhookSubscription) -> None:
        webhook_subscription_delete(subscription=obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[WebhookSubscription]) -> None:
        for subscription in queryset:
            webhook_subscription_delete(subscription=subscription)

    def save_model(self, request: HttpRequest, obj: WebhookSubscription, form: forms.Form, change: bool) -> None:
        """A change writes only what the operator changed on the page, on the subscription as it
        stands (``webhook_subscription_update``): the form wrote back every field as the page showed
        it, so a receiver turned off through the API while the page was open was turned on again by
        a change of its description."""
        if change:
            fields = {name: form.cleaned_data[name] for name in form.changed_data if name in form.cleaned_data}
            webhook_subscription_update(subscription=obj, **fields)
            return
        obj.secret = secret_new()
        super().save_model(request, obj, form, change)
        webhook_subscription_unwanted_dropped(subscription=obj)
        self.message_user(request, f"The signing secret, shown only now: {obj.secret}", messages.WARNING)


class WebhookAttemptInline(ReadOnlyMixin, admin.TabularInline):
    """What each try got back; written by the sender, never by hand."""

    model = WebhookAttempt
    extra = 0
    fields = ["attempted_at", "status_code", "error", "duration_ms"]
    readonly_fields = fields  # type: ignore[assignment]  # the stubs let fields nest, not readonly_fields


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(CappedList, admin.ModelAdmin):
    list_display = [
        "created_at",
        "event_type",
        "subscription",
        "state_badge",
        "attempts",
        "last_status_code",
        "last_error",
        "next_attempt_at",
    ]
    # Deliveries are kept: as the message log, a time filter instead of a date hierarchy (its
    # months are a SELECT DISTINCT over the table) and a count capped.
    list_filter = ["state", "event_type", "subscription", TimeRangeFilter]
    search_fields = ["event_id", "subscription__url"]
    search_help_text = "An event id or a delivery's id (whole), or part of a receiver's URL."
    list_select_related = ["subscription"]
    fields = [
        "event_type",
        "event_id",
        "subscription",
        "state_badge",
        "attempts",
        "next_attempt_at",
        "last_status_code",
        "last_error",
        "created_at",
        "delivered_at",
        "payload",
    ]
    readonly_fields = fields  # type: ignore[assignment]  # the stubs let fields nest, not readonly_fields
    inlines = [WebhookAttemptInline]
    actions = ["resend"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def get_search_fields(self, request: HttpRequest) -> list[str]:
        """Searching receivers' URLs only for whoever may read them whole: it would tell a secret
        in them to a guess otherwise."""
        if request.user.has_perm("webhooks.change_webhooksubscription"):
            return list(self.search_fields)
        return [name for name in self.search_fields if name != "subscription__url"]

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[WebhookDelivery], search_term: str
    ) -> tuple[QuerySet[WebhookDelivery], bool]:
        """An event id (or a delivery's id), whole, by its index; part of a receiver's URL (for whoever
        may search them) through the subscriptions first, then by the deliveries' subscription index.
        An ILIKE of the event id's text, through the join to the subscriptions, scanned every delivery
        (0.18 s a page at 100,000 deliveries, seconds at millions)."""
        term = search_term.strip()
        if not term:
            return queryset, False
        found = Q(pk__in=[])
        with contextlib.suppress(ValueError):  # not a whole id
            found |= Q(event_id=uuid.UUID(term)) | Q(pk=uuid.UUID(term))
        if "subscription__url" in self.get_search_fields(request):
            receivers = WebhookSubscription.objects.filter(url__icontains=term).values_list("pk", flat=True)
            found |= Q(subscription_id__in=list(receivers))
        return queryset.filter(found), False

    def get_urls(self) -> list[URLPattern]:
        resend = path(
            "<path:object_id>/resend/",
            self.admin_site.admin_view(require_POST(self.resend_view)),
            name="webhooks_webhookdelivery_resend",
        )
        return [resend, *super().get_urls()]

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        # Every field is read-only: the page's only write is the re-send button.
        no_save = {"show_save": False, "show_save_and_continue": False, "show_save_and_add_another": False}
        return super().change_view(request, object_id, form_url, {**no_save, **(extra_context or {})})

    def resend_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        delivery = self.get_object(request, unquote(object_id))
        if delivery is None:
            raise Http404("No such webhook delivery.")
        if not self.has_change_permission(request, delivery):
            raise PermissionDenied
        if webhook_delivery_resend(delivery=delivery):
            self.message_user(request, f"Queued the {delivery.event_type} delivery again.", messages.SUCCESS)
        else:
            self.message_user(request, BEING_SENT_ONE, messages.WARNING)
        return HttpResponseRedirect(reverse("admin:webhooks_webhookdelivery_change", args=[delivery.pk]))

    @admin.action(description="Re-send selected deliveries", permissions=["change"])
    def resend(self, request: HttpRequest, queryset: QuerySet[WebhookDelivery]) -> None:
        selected = queryset.count()
        resent = webhook_deliveries_resend(deliveries=queryset)
        self.message_user(request, f"Queued {resent} deliveries again.", messages.SUCCESS)
        if resent < selected:
            self.message_user(request, BEING_SENT_MANY.format(count=selected - resent), messages.WARNING)

    @admin.display(description="state", ordering="state")
    def state_badge(self, obj: WebhookDelivery) -> SafeString:
        colour = STATE_COLOURS.get(obj.state, "inherit")
        return format_html('<strong style="color: {}">{}</strong>', colour, obj.get_state_display())

    @admin.display(description="payload")
    def payload(self, obj: WebhookDelivery) -> SafeString:
        try:
            text = json.dumps(json.loads(obj.body), indent=2, ensure_ascii=False)
        except ValueError:
            text = obj.body
        return format_html('<pre class="webhook-payload">{}</pre>', text)
