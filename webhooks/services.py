"""Webhook subscriptions, the delivery outbox and its delivery with signatures and retries."""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Case, F, Field, Max, Min, Model, Q, QuerySet, Value, When, Window
from django.db.models.expressions import RawSQL
from django.db.models.functions import RowNumber
from django.utils import timezone

from kernel import cache_changes, sweeps
from kernel.background_sends import broker_sends
from kernel.batch_memo import batch_memoized
from kernel.plain_sql import condition_holds
from kernel.storable_text import text_escaped
from webhooks.models import DeliveryState, WebhookAttempt, WebhookDelivery, WebhookSubscription
from webhooks.signing import secret_new
from webhooks.url_safety import webhook_url_check, webhook_url_redacted

logger = logging.getLogger(__name__)

# Receiver answers that will never succeed on retry: redirects are not followed, so a permanent one
# (301 Moved Permanently, 308 Permanent Redirect: the receiver moved, to https say) neither.
_PERMANENT_STATUSES = {301, 308, 400, 401, 403, 404, 405, 410, 413, 422}


def webhook_subscription_create(
    *, url: str, events: list[str], description: str = "", active: bool = True
) -> WebhookSubscription:
    webhook_url_check(url)
    return WebhookSubscription.objects.create(
        url=url, events=events, description=description, active=active, secret=secret_new()
    )


def iso_utc(value: datetime) -> str:
    """A time in event data and the billing CSV: ISO 8601 in UTC with ``Z``, to the second, as the
    REST API writes times (``REST_FRAMEWORK["DATETIME_FORMAT"]``)."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def webhook_event_emit(*, event_type: str, data: dict[str, Any]) -> list[WebhookDelivery]:
    """Write the event to the outbox of every subscriber; call inside the causing transaction.

    Delivery is queued when that transaction commits, so a rolled-back cause sends nothing.
    """
    if not webhook_event_may_have_subscribers(event_type=event_type):
        return []
    subscriptions = _subscribers_held(event_type)
    if not subscriptions:
        return []
    now = timezone.now()
    event_id = uuid.uuid4()
    body = json.dumps(
        {"id": str(event_id), "type": event_type, "created_at": now.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "data": data},
        separators=(",", ":"),
        default=str,
    )
    deliveries = WebhookDelivery.objects.bulk_create(
        WebhookDelivery(
            event_id=event_id, event_type=event_type, subscription=subscription, body=body, next_attempt_at=now
        )
        for subscription in subscriptions
    )
    transaction.on_commit(_queue_delivery)
    return deliveries


def _subscribers_held(event_type: str) -> list[WebhookSubscription]:
    """The active subscriptions that receive ``event_type``, on PostgreSQL each row held (FOR KEY
    SHARE, the lock its deliveries' foreign key takes, which no other emitter's waits for) until
    the caller's transaction ends. Read without it, a subscription deleted
    (``webhook_subscription_delete``) between the read and the commit failed that commit on its
    delivery's foreign key, checked then (an IntegrityError: the write that emitted, an API
    request's or a task's, lost). Now the deletion waits for the emitter and deletes its delivery
    too; an emitter that comes second waits for the deletion and finds the subscription gone."""
    if connection.vendor != "postgresql":
        return [s for s in WebhookSubscription.objects.filter(active=True) if event_type in s.events]
    table = connection.ops.quote_name(WebhookSubscription._meta.db_table)
    held = WebhookSubscription.objects.raw(
        f"SELECT * FROM {table} WHERE active AND (jsonb_typeof(events) <> 'array' OR events ? %s)"
        " ORDER BY created_at DESC FOR KEY SHARE",
        [event_type],
    )
    return [s for s in held if event_type in s.events]


def webhook_event_may_have_subscribers(*, event_type: str) -> bool:
    """False when no active subscription can receive ``event_type``: a plain statement on PostgreSQL,
    for the OCPP messages and commands that emit an event nobody subscribed to (issue 15); True
    elsewhere. A caller may skip its transaction around ``webhook_event_emit`` when this is False.

    Asked once per group-commit batch (``kernel.batch_memo``), and kept per process while it listens
    to ``kernel.cache_changes`` (a gateway process): a subscription saved or deleted through the ORM
    in any process empties every process's answers (``webhook_subscriptions_changed``); one changed
    by a queryset ``update()`` or raw SQL, or whose notice is lost, is seen within
    ``SUBSCRIBERS_KEPT_SECONDS`` (an answer is kept no longer)."""
    if connection.vendor != "postgresql":
        return True
    kept = _subscribed_kept.get(event_type)
    if kept is not None and kept[1] > time.monotonic():
        return kept[0]
    return batch_memoized(("webhook_event_may_have_subscribers", event_type), lambda: _subscribed_read(event_type))


# An answer is kept at most this long (s): a change whose notice never arrives (its publisher lost
# Redis, died before publishing, or wrote without a model signal) delays events no longer than this.
SUBSCRIBERS_KEPT_SECONDS = 5.0
# event type -> (whether an active subscription may receive it, time.monotonic() it expires), kept
# while cache_changes.listening(); read by the batch threads, forgotten on the event loop
_subscribed_kept: dict[str, tuple[bool, float]] = {}
_forgets = 0  # counts _subscribed_forget: an answer read before a change is not kept
_kept_lock = threading.Lock()
SUBSCRIPTIONS_TOPIC = "webhook-subscriptions"


def _subscribed_read(event_type: str) -> bool:
    with _kept_lock:
        forgets = _forgets
    answer = _subscribed(event_type)
    with _kept_lock:
        if cache_changes.listening() and forgets == _forgets:
            _subscribed_kept[event_type] = (answer, time.monotonic() + SUBSCRIBERS_KEPT_SECONDS)
    return answer


def _subscribed(event_type: str) -> bool:
    return condition_holds(*webhook_subscribers_condition(event_type=event_type))


def _subscribed_forget() -> None:
    global _forgets
    with _kept_lock:
        _forgets += 1
        _subscribed_kept.clear()


cache_changes.forgetter_register(SUBSCRIPTIONS_TOPIC, _subscribed_forget)


def webhook_subscription_update(*, subscription: WebhookSubscription, **fields: Any) -> WebhookSubscription:
    """Change a subscription's ``fields`` (url, events, active, description) on its row as it stands,
    locked, then fail its pending deliveries it no longer wants (``webhook_subscription_unwanted_dropped``):
    saved as its caller read it (an admin page open for a while), a change of its description turned
    on again a receiver the API had just turned off, and put back a secret rotated meanwhile."""
    with transaction.atomic():
        current = WebhookSubscription.objects.select_for_update().filter(pk=subscription.pk).first()
        if current is not None:
            for field in WebhookSubscription._meta.concrete_fields:
                setattr(subscription, field.attname, getattr(current, field.attname))
        for name, value in fields.items():
            setattr(subscription, name, value)
        subscription.save()
        webhook_subscription_unwanted_dropped(subscription=subscription)
    return subscription


def webhook_subscriptions_changed(**_: Any) -> None:
    """WebhookSubscription's ``post_save`` / ``post_delete`` receiver: every process's kept answers
    are forgotten (this one's at once, the others' when the change commits)."""
    cache_changes.changed(SUBSCRIPTIONS_TOPIC)


def webhook_subscription_unwanted_dropped(*, subscription: WebhookSubscription) -> int:
    """After a change to ``subscription`` (API or admin): its pending deliveries it no longer wants (it
    was deactivated, or the event type left its ``events``) fail at once, with why, instead of being
    retried to a receiver that was turned off (an admin re-sends one when wanted). Returns how many.
    A delivery made pending after this (a re-send, an event whose transaction read the subscription
    before the change committed) is failed so by the claim (``webhook_deliveries_claim``)."""
    pending = WebhookDelivery.objects.filter(subscription=subscription, state=DeliveryState.PENDING)
    if subscription.active:
        pending = pending.exclude(event_type__in=subscription.events)
    return pending.update(state=DeliveryState.FAILED, last_error=_unwanted_error(subscription))


def _unwanted_error(subscription: WebhookSubscription) -> str:
    reason = "the subscription was deactivated" if not subscription.active else "its event type left the subscription"
    return f"Not delivered: {reason}."


def _unwanted(delivery: WebhookDelivery) -> bool:
    """Whether the delivery's subscription no longer wants it: deactivated, or its event type gone."""
    events = delivery.subscription.events
    return not delivery.subscription.active or (isinstance(events, list) and delivery.event_type not in events)


def webhook_subscribers_condition(*, event_type: str) -> tuple[str, list[str]]:
    """PostgreSQL only: an SQL boolean expression, true when an active subscription may receive
    ``event_type`` (as ``webhook_event_may_have_subscribers``), and its parameters: for a statement
    that writes only when nobody subscribed (``kernel.plain_sql.instance_updated``'s ``unless``)."""
    table = connection.ops.quote_name(WebhookSubscription._meta.db_table)
    return (
        f"EXISTS (SELECT 1 FROM {table} WHERE active AND (jsonb_typeof(events) <> 'array' OR events ? %s))",
        [event_type],
    )


def _queue_delivery() -> None:
    """Wake a webhook worker, from this process's sender thread (``kernel.background_sends``): the
    committing thread (in the gateway, the batch thread answering chargers) never waits on the broker.
    Wakes asked while one waits to be sent are sent as one. If the broker is down, the workers find
    the deliveries within a poll interval (``CSMS_WEBHOOK_SWEEP_INTERVAL``)."""
    from webhooks.tasks import deliver_webhooks

    broker_sends.send(
        "deliver_webhooks",
        deliver_webhooks.delay,
        failed="Could not wake a webhook worker; its next poll sends the deliveries",
    )


@dataclass(frozen=True)
class Claim:
    """Deliveries one claim holds until ``expires_at`` (the lease), under its own fencing token."""

    token: uuid.UUID
    expires_at: datetime
    deliveries: list[WebhookDelivery]


@dataclass(frozen=True)
class AttemptOutcome:
    """One POST of a claimed delivery: the receiver's status code, or the error (empty: delivered).

    ``refused``: the URL guard refused the target, so no retry can pass it (nothing was sent).
    ``retry_after``: the seconds a 429 or 503 answer's Retry-After asked to wait from its answer, if any.
    """

    delivery: WebhookDelivery
    token: uuid.UUID
    attempted_at: datetime
    status_code: int | None
    error: str
    duration_ms: float
    refused: bool = False
    retry_after: float | None = None


def webhook_deliveries_claim(
    *,
    limit: int,
    per_receiver: int,
    in_flight: Mapping[uuid.UUID, int] | None = None,
    reserve: int = 0,
) -> Claim:
    """Claim up to ``limit`` due pending deliveries, at most ``per_receiver`` per subscription with what
    the caller has in flight to it (``in_flight``: subscription id -> deliveries), the least loaded
    receivers first and each receiver's oldest due first.

    Only delivery rows are locked (``FOR UPDATE OF`` the delivery, ``SKIP LOCKED``): neither an
    emitting transaction's foreign-key lock nor an overlapping claim on the same subscription makes
    a claim skip a row it could take, and twice ``limit`` candidates (from the ``4 * limit`` oldest
    due) are considered, so a claim overlapping another still gets its share past the rows the
    other one holds. The claimed rows
    carry a new lease token and are not due again until the lease passes, so a worker killed
    mid-delivery leaves them to the next claim (at-least-once, the event id unchanged).
    A subscription with ``per_receiver`` in flight is left out (the caller has all its slots in use), one
    with fewer gets its free slots only: the worker claimed ``per_receiver`` more for a receiver with
    one in flight, and a slow receiver's deliveries, waiting for its slots, held nearly twice its
    share of the worker's (``CSMS_WEBHOOK_MAX_IN_FLIGHT``: two slow receivers, 510 of 512).

    Fairness between receivers: a receiver's first delivery in flight may take any of the ``limit``
    slots, its further ones only those past ``reserve`` (the slots kept for receivers with nothing in
    flight), and the claim serves the receivers with fewest in flight first. Capped one by one only,
    as many slow receivers as the worker's slots over ``per_receiver`` held every slot (4 of the
    default 128 in 512), their backlog due before anything newer, and a receiver that answers at once
    was sent nothing until theirs timed out. A locked delivery
    its subscription no longer wants (deactivated, or its event type taken off) is failed, not claimed:
    a deactivated subscription is sent nothing, even a delivery re-sent or emitted after the change.
    """
    now = timezone.now()
    expires_at = now + timedelta(seconds=settings.CSMS_WEBHOOK_CLAIM_LEASE_SECONDS)
    due = WebhookDelivery.objects.filter(state=DeliveryState.PENDING, next_attempt_at__lte=now)
    in_flight = {subscription: count for subscription, count in (in_flight or {}).items() if count > 0}
    shared = limit - reserve  # the slots a receiver's further deliveries may take
    busy = [subscription for subscription, count in in_flight.items() if count >= per_receiver or shared <= 0]
    if busy:
        due = due.exclude(subscription_id__in=busy)
    free = Case(
        *(When(subscription_id=s, then=Value(per_receiver - n)) for s, n in in_flight.items() if s not in busy),
        default=Value(per_receiver),
    )
    held = Case(*(When(subscription_id=s, then=Value(n)) for s, n in in_flight.items()), default=Value(0))
    # The ranking reads only the oldest due rows (on the (state, next_attempt_at) index), so a claim
    # costs the same with a backlog of 20 or 20,000.
    oldest = due.order_by("next_attempt_at", "id").values("id")[: 4 * limit]
    least_loaded_first = (
        WebhookDelivery.objects.filter(id__in=oldest)
        .annotate(rank=Window(RowNumber(), partition_by=F("subscription_id"), order_by=[F("next_attempt_at"), F("id")]))
        .annotate(free=free, load=F("rank") + held)
        .filter(rank__lte=F("free"))
        .order_by("load", "next_attempt_at", "id")
        .values_list("id", flat=True)[: 2 * limit]
    )
    candidates = list(least_loaded_first)
    in_their_order = _in_the_order_of(candidates)
    token = uuid.uuid4()
    with transaction.atomic():
        locked = list(
            WebhookDelivery.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(id__in=candidates, state=DeliveryState.PENDING, next_attempt_at__lte=now)
            .select_related("subscription")
            .order_by(in_their_order)[:limit]
        )
        locked.sort(key=lambda delivery: (delivery.next_attempt_at, delivery.id))
        wanted = [delivery for delivery in locked if not _unwanted(delivery)]
        claimed = _fair_share(wanted, limit=limit, per_receiver=per_receiver, in_flight=in_flight, shared=shared)
        WebhookDelivery.objects.filter(id__in=[d.id for d in claimed]).update(
            next_attempt_at=expires_at, lease_token=token
        )
        _unwanted_failed([delivery for delivery in locked if _unwanted(delivery)])
    return Claim(token=token, expires_at=expires_at, deliveries=claimed)


def _in_the_order_of(candidates: list[uuid.UUID]) -> RawSQL | Case:
    """An ordering of deliveries by their place in ``candidates``: PostgreSQL's ``array_position``
    over one array parameter; elsewhere (``make run``'s SQLite, which has neither arrays nor
    ``::`` casts: every claim failed there, so nothing was ever delivered) a ``CASE`` of the ids."""
    if connection.vendor == "postgresql":
        return RawSQL(f'array_position(%s::uuid[], "{WebhookDelivery._meta.db_table}"."id")', (candidates,))
    places = (When(id=id_, then=Value(place)) for place, id_ in enumerate(candidates))
    return Case(*places, default=Value(len(candidates)))


def _fair_share(
    deliveries: list[WebhookDelivery], *, limit: int, per_receiver: int, in_flight: Mapping[uuid.UUID, int], shared: int
) -> list[WebhookDelivery]:
    """Of ``deliveries`` (oldest due first), the claim's: each receiver's n-th in flight after every
    receiver's (n-1)-th, at most ``per_receiver`` each, ``limit`` in all, and a receiver's second and
    further ones only while fewer than ``shared`` are taken (the rest kept for first ones)."""
    taken: Counter[uuid.UUID] = Counter()
    loaded = []
    for delivery in deliveries:
        taken[delivery.subscription_id] += 1
        loaded.append((in_flight.get(delivery.subscription_id, 0) + taken[delivery.subscription_id], delivery))
    loaded.sort(key=lambda pair: pair[0])  # stable: each load's oldest due first
    claimed: list[WebhookDelivery] = []
    for load, delivery in loaded:
        if len(claimed) >= limit:
            break
        if load <= per_receiver and (load == 1 or len(claimed) < shared):
            claimed.append(delivery)
    return claimed


def _unwanted_failed(deliveries: list[WebhookDelivery]) -> None:
    """Fail, unsent, the claimed deliveries their subscription no longer wants (``_unwanted``), saying why:
    one UPDATE per reason (none when there are none)."""
    by_error: dict[str, list[uuid.UUID]] = defaultdict(list)
    for delivery in deliveries:
        by_error[_unwanted_error(delivery.subscription)].append(delivery.id)
    for error, ids in by_error.items():
        unsent = WebhookDelivery.objects.filter(id__in=ids)
        unsent.update(state=DeliveryState.FAILED, last_error=error, lease_token=None)


def _attempt_result(outcome: AttemptOutcome, now: datetime) -> dict[str, Any]:
    """The delivery's fields after this attempt: delivered, failed for good (refused by the URL guard,
    a permanent status or the last attempt), or due again after the backoff, or after the receiver's
    Retry-After when that is later, up to the last retry's wait (``webhook_retry_wait_longest``): a
    receiver answering 429 or 503 was retried after the backoff alone, sooner than it asked, each
    attempt spent of the delivery's few, and a hostile one's wait of a year is bounded."""
    attempts = outcome.delivery.attempts + 1
    fields: dict[str, Any] = {
        "attempts": attempts,
        "last_status_code": outcome.status_code,
        "last_error": text_escaped(outcome.error),
        "lease_token": None,
    }
    if not outcome.error:
        return {**fields, "state": DeliveryState.DELIVERED, "delivered_at": now}
    if outcome.refused or outcome.status_code in _PERMANENT_STATUSES or attempts >= settings.CSMS_WEBHOOK_MAX_ATTEMPTS:
        return {**fields, "state": DeliveryState.FAILED}
    wait = float(settings.CSMS_WEBHOOK_RETRY_BASE * 2 ** (attempts - 1))
    if outcome.retry_after is not None:
        wait = max(wait, min(outcome.retry_after, webhook_retry_wait_longest()))
    return {**fields, "next_attempt_at": now + timedelta(seconds=wait)}


def webhook_retry_wait_longest() -> int:
    """The longest wait before a retry, in seconds: the last retry's backoff, ``CSMS_WEBHOOK_RETRY_BASE``
    x 2^(``CSMS_WEBHOOK_MAX_ATTEMPTS`` - 2); a receiver's Retry-After is waited for up to this."""
    return int(settings.CSMS_WEBHOOK_RETRY_BASE * 2 ** max(settings.CSMS_WEBHOOK_MAX_ATTEMPTS - 2, 0))


def _held(pairs: Iterable[tuple[uuid.UUID, uuid.UUID]]) -> Q:
    by_token: dict[uuid.UUID, list[uuid.UUID]] = defaultdict(list)
    for token, delivery_id in pairs:
        by_token[token].append(delivery_id)
    held = Q(pk__in=[])
    for token, ids in by_token.items():
        held |= Q(lease_token=token, id__in=ids)
    return held


def webhook_attempts_record(*, outcomes: Sequence[AttemptOutcome]) -> set[uuid.UUID]:
    """Record attempts whose claim still holds their delivery; returns the ids recorded.

    Fencing: the deliveries are locked and their lease token compared before anything is written.
    An attempt whose lease passed and whose delivery another claim took since is dropped (and
    logged): it records no second success and schedules no second retry. Deliveries with the same
    result are written by one UPDATE, the attempts by one INSERT.

    An error holds what the receiver answered (a redirect's ``Location``, an exception's text): what
    PostgreSQL cannot store in it (a NUL, the lone surrogates of bytes that are not UTF-8) is written
    as its JSON escape (``kernel.storable_text``); the write failed, and the engine, retrying its
    batch, recorded no attempt of any receiver after it.
    """
    if not outcomes:
        return set()
    now = timezone.now()
    with transaction.atomic():
        held = set(
            WebhookDelivery.objects.select_for_update(of=("self",))
            .filter(_held((o.token, o.delivery.id) for o in outcomes))
            .values_list("id", flat=True)
        )
        recorded = [o for o in outcomes if o.delivery.id in held]
        groups: dict[tuple[tuple[str, Any], ...], list[uuid.UUID]] = defaultdict(list)
        for outcome in recorded:
            groups[tuple(_attempt_result(outcome, now).items())].append(outcome.delivery.id)
        for fields, ids in groups.items():
            WebhookDelivery.objects.filter(id__in=ids).update(**dict(fields))
        WebhookAttempt.objects.bulk_create(
            WebhookAttempt(
                delivery_id=o.delivery.id,
                attempted_at=o.attempted_at,
                status_code=o.status_code,
                error=text_escaped(o.error),
                duration_ms=o.duration_ms,
            )
            for o in recorded
        )
    if len(recorded) < len(outcomes):
        logger.warning("Dropped %d webhook attempts whose lease had passed", len(outcomes) - len(recorded))
    return held


def webhook_deliveries_release(*, token: uuid.UUID, delivery_ids: Collection[uuid.UUID]) -> int:
    """Hand claimed deliveries that were not sent back, due now, unless another claim took them since."""
    return WebhookDelivery.objects.filter(id__in=delivery_ids, lease_token=token).update(
        next_attempt_at=timezone.now(), lease_token=None
    )


def webhook_delivery_resend(*, delivery: WebhookDelivery) -> bool:
    """Operator's re-send of one delivery (``webhook_deliveries_resend``); False when it was left to the
    attempt a worker is making now."""
    return webhook_deliveries_resend(deliveries=WebhookDelivery.objects.filter(pk=delivery.pk)) == 1


def webhook_deliveries_resend(*, deliveries: QuerySet[WebhookDelivery]) -> int:
    """Operator's re-send: back to pending, due now, with a fresh attempt budget and no delivery time
    (a delivered one re-sent that then failed showed failed, delivered at its earlier time). One UPDATE and one
    wake-up however many: the admin action on every delivery a receiver's day-long outage failed
    (20 000) was an UPDATE and a wake-up each, a minute's request. Returns how many.

    A delivery a worker is sending right now (``being_sent``) is left to that attempt: re-sent, it was
    due at once and sent a second time beside the first, and the first attempt, its lease taken
    from it, was dropped unrecorded even when the receiver took it."""
    now = timezone.now()
    with transaction.atomic():
        resent = (
            deliveries.order_by()
            .exclude(being_sent(now))
            .update(state=DeliveryState.PENDING, attempts=0, next_attempt_at=now, lease_token=None, delivered_at=None)
        )
        transaction.on_commit(_queue_delivery)
    return resent


def being_sent(now: datetime) -> Q:
    """The deliveries a claim holds at ``now``: pending, under a lease that has not passed."""
    return Q(state=DeliveryState.PENDING, lease_token__isnull=False, next_attempt_at__gt=now)


def webhook_subscription_delete(*, subscription: WebhookSubscription) -> int:
    """Delete a subscription with its deliveries and their attempts: one DELETE per table, in one
    transaction, then the subscription through the ORM (its ``post_delete`` tells the processes).
    The ORM's cascade read every delivery into memory first (1,000,000 of a receiver's: minutes).
    Returns the deliveries deleted.

    Events go on being emitted meanwhile: a transaction that read the subscription to write a
    delivery for it holds its row (``_subscribers_held``) until it commits. The subscription's
    deletion waited for it, and its delivery, committed then, failed the deletion (an
    IntegrityError: a 500 for the API, the admin) whenever a busy subscription's events were being
    written. So the row is locked once the bulk of the deliveries is gone (the events emitted until
    then are written meanwhile), and the deliveries committed by then are deleted with the
    subscription; an event emitted after the lock waits for the deletion and finds no subscription."""
    with transaction.atomic():
        deleted = _subscription_deliveries_deleted(subscription)
        list(WebhookSubscription.objects.select_for_update().filter(pk=subscription.pk).values_list("pk"))
        deleted += _subscription_deliveries_deleted(subscription)
        subscription.delete()
    return deleted


def _subscription_deliveries_deleted(subscription: WebhookSubscription) -> int:
    """The subscription's deliveries and their attempts, one DELETE each; the deliveries deleted."""
    WebhookAttempt.objects.filter(delivery__subscription=subscription)._raw_delete(WebhookAttempt.objects.db)
    deliveries = WebhookDelivery.objects.filter(subscription=subscription)
    return deliveries._raw_delete(deliveries.db)


def webhook_deliveries_prune(*, older_than_days: int) -> int:
    """Delete the finished deliveries (delivered, or failed for good) whose last claim, re-send or
    creation is more than ``older_than_days`` old, with their attempts: their bodies hold id tags,
    kept no longer than the message log's frames. A pending delivery (due, or waiting for a retry)
    and one a worker holds (its lease) are kept whatever their age.

    A delivery's ``next_attempt_at`` is at least its creation, its last claim (the lease's end) and
    its last re-send, and is on the ``(state, next_attempt_at)`` index. At most
    ``kernel.sweeps.PRUNE_CHUNK`` deliveries a transaction, the oldest first: locked (one re-sent
    meanwhile is finished no more, and passed over; one locked by a re-send is left to the next
    chunk or run), their attempts deleted, then they. One DELETE per table of every delivery past
    the retention was a month of a busy outbox in one transaction once the retention was shortened.
    Returns the deliveries deleted."""
    finished = WebhookDelivery.objects.filter(
        state__in=(DeliveryState.DELIVERED, DeliveryState.FAILED),
        lease_token__isnull=True,
        next_attempt_at__lt=timezone.now() - timedelta(days=older_than_days),
    )
    deleted = 0
    while True:
        chunk = sweeps.PRUNE_CHUNK
        with transaction.atomic():
            pks = list(
                finished.select_for_update(skip_locked=True)
                .order_by("next_attempt_at")
                .values_list("pk", flat=True)[:chunk]
            )
            if pks:
                WebhookAttempt.objects.filter(delivery__in=pks).delete()
                gone = WebhookDelivery.objects.filter(pk__in=pks)
                deleted += gone._raw_delete(gone.db)  # its attempts are gone: no cascade to collect row by row
        if len(pks) < chunk:
            return deleted


def webhook_history_redact() -> int:
    """Redact the URLs the admin's history (``LogEntry.object_repr``) kept of subscriptions saved
    before a subscription was named by its redacted URL (``WebhookSubscription.__str__``): a
    history page is shown to whoever may view the subscription. Idempotent; the number changed."""
    from django.contrib.admin.models import LogEntry
    from django.contrib.contenttypes.models import ContentType

    content_type = ContentType.objects.get_for_model(WebhookSubscription)
    changed = []
    for entry in LogEntry.objects.filter(content_type=content_type).only("pk", "object_repr"):
        redacted = webhook_url_redacted(entry.object_repr)
        if redacted != entry.object_repr:
            entry.object_repr = redacted
            changed.append(entry)
    LogEntry.objects.bulk_update(changed, ["object_repr"], batch_size=1000)
    return len(changed)


# A ClientResponseError's text as recorded before it was told without the request's URL (round 52): its
# status and message, then ``, url='<the URL, secrets included>'``.
_RESPONSE_ERROR_URL = re.compile(r"^(\w+: \d+, message=.*), url=(?:'[^']*'|\"[^\"]*\")$", re.DOTALL)


def recorded_error_redacted(error: str, url: str) -> str:
    """An attempt's ``error`` (or a delivery's last one) recorded for a POST to ``url``, as it is recorded
    now (``delivery.failure_told``): a ClientResponseError's without the URL it ended with, any other's
    with ``url`` redacted (``webhook_url_redacted``)."""
    error = _RESPONSE_ERROR_URL.sub(r"\1", error)
    return error.replace(url, webhook_url_redacted(url)) if url else error


def webhook_errors_redact(*, batch_size: int = 2000) -> int:
    """Redact the receivers' URLs that errors recorded before their redaction (round 52) still hold, the
    ``?token=`` and the like shown to whoever may see deliveries (support staff: the deliveries' list, a
    delivery's page, the dashboard): attempts' errors and deliveries' last errors, as
    ``recorded_error_redacted``. Idempotent; ``batch_size`` rows read and one UPDATE per batch and table,
    written only where the error is still the one read (a worker recording a delivery's next attempt
    meanwhile keeps its error); attempts by ranges of their primary key, deliveries by their primary
    key's order (``manage.py redact_recorded_secrets``). Returns the rows changed."""
    changed = 0
    bounds = WebhookAttempt.objects.aggregate(low=Min("pk"), high=Max("pk"))
    if bounds["low"] is not None:
        for low in range(bounds["low"], bounds["high"] + 1, batch_size):
            rows = (
                WebhookAttempt.objects.filter(pk__gte=low, pk__lt=low + batch_size)
                .exclude(error="")
                .values_list("pk", "error", "delivery__subscription__url")
            )
            changed += _errors_replaced(WebhookAttempt, "error", rows)
    last_pk = None
    while True:
        batch = WebhookDelivery.objects.order_by("pk")
        if last_pk is not None:
            batch = batch.filter(pk__gt=last_pk)
        deliveries = list(batch.values_list("pk", "last_error", "subscription__url")[:batch_size])
        if not deliveries:
            return changed
        last_pk = deliveries[-1][0]
        changed += _errors_replaced(WebhookDelivery, "last_error", [row for row in deliveries if row[1]])


def _errors_replaced(model: type[Model], field: str, rows: Iterable[tuple[Any, str, str]]) -> int:
    """Write each row's error redacted (``recorded_error_redacted``) where it is still the one read: one
    UPDATE (none when nothing changes). Returns the rows written."""
    redacted_rows = ((pk, error, recorded_error_redacted(error, url)) for pk, error, url in rows)
    changes = [(pk, error, redacted) for pk, error, redacted in redacted_rows if redacted != error]
    if not changes:
        return 0
    still = Q(pk__in=[])
    for pk, error, _ in changes:
        still |= Q(pk=pk, **{field: error})
    redacted = Case(
        *(When(pk=pk, then=Value(new)) for pk, _, new in changes),
        default=F(field),
        output_field=cast(Field, model._meta.get_field(field)),
    )
    return model._default_manager.filter(still).update(**{field: redacted})
