"""Sending webhook deliveries: many at once on kept-alive connections, a bounded number per receiver.

The webhook worker (``celery -A csms worker -Q webhooks --pool solo``) runs one ``DeliveryEngine``:
an asyncio loop in a thread of its own that claims, POSTs and records, with every database call
made by one more thread on one connection for the life of the worker (a Celery task never touches
the database, so Celery's per-task closing of Django's connections costs nothing here).
Each claim runs the URL guard once per receiver (or waits for the one under way) and pins the vetted
addresses in the client's resolver (``pinned_resolver.PinnedResolver``): a connection goes only to an
address that was checked.
The rules (claims, leases, backoff, permanent failures) live in ``services``.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import logging
import ssl
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC
from functools import partial
from typing import Any, TypeVar

import aiohttp
from django.conf import settings
from django.db import DatabaseError, connection
from django.utils import timezone

from webhooks.models import WebhookDelivery
from webhooks.pinned_resolver import PinnedResolver
from webhooks.services import (
    AttemptOutcome,
    Claim,
    webhook_attempts_record,
    webhook_deliveries_claim,
    webhook_deliveries_release,
)
from webhooks.signing import subscription_signature_header
from webhooks.url_safety import (
    UnsafeWebhookUrl,
    WebhookHostUnresolved,
    webhook_target_resolve,
    webhook_url_redacted,
)

logger = logging.getLogger(__name__)
T = TypeVar("T")

USER_AGENT = "Dynamo-CSMS-Webhooks/1"
# An attempt must end this long before its lease does, and is not started with less than
# LEASE_MARGIN_SECONDS + MIN_ATTEMPT_SECONDS of lease left: an attempt never outlives its claim.
LEASE_MARGIN_SECONDS = 1.0
MIN_ATTEMPT_SECONDS = 0.5
# The engine claims at most this often (finished deliveries are gathered between two claims) and
# records outcomes in batches this far apart.
CLAIM_INTERVAL_SECONDS = 0.02
# One slot in this many of the engine's (at least one) is kept for receivers with nothing in flight.
RESERVED_SHARE = 4
RECORD_INTERVAL_SECONDS = 0.05
RECORD_BATCH = 500


def client_session(*, max_connections: int, resolver: PinnedResolver) -> aiohttp.ClientSession:
    """Kept-alive connections shared by every delivery, made only to the addresses ``resolver`` was
    given (no DNS of its own, no cache, no proxy from the environment); redirects are never followed
    (per request). The trusted certificates are read now (``SSL_CERT_FILE`` is honoured)."""
    connector = aiohttp.TCPConnector(
        limit=max_connections,
        limit_per_host=0,
        resolver=resolver,
        use_dns_cache=False,
        ssl=ssl.create_default_context(),
    )
    return aiohttp.ClientSession(connector=connector, headers={"User-Agent": USER_AGENT}, trust_env=False)


async def refused_urls(urls: set[str], resolver: PinnedResolver) -> dict[str, UnsafeWebhookUrl]:
    """The URL guard, once per receiver URL of a claim: pins the vetted addresses of each URL that
    passes in ``resolver`` and returns {url: the guard's refusal} for the others.

    The guard runs before sending here and in the engine (``url_refusal``, in threads: it resolves
    DNS). A refusal is UnsafeWebhookUrl (never deliverable) or WebhookHostUnresolved (DNS may answer
    next time).
    """

    verdicts = await asyncio.gather(*(url_refusal(url, resolver) for url in urls))
    return {url: verdict for url, verdict in zip(urls, verdicts, strict=True) if verdict}


async def url_refusal(
    url: str, resolver: PinnedResolver, lookups: ThreadPoolExecutor | None = None
) -> UnsafeWebhookUrl | None:
    """The URL guard for one receiver URL (in a thread of ``lookups``, else of the loop's executor: it
    resolves DNS): pins its vetted addresses in ``resolver`` and returns None, or returns the guard's refusal."""
    try:
        resolver.pin(await asyncio.get_running_loop().run_in_executor(lookups, webhook_target_resolve, url))
    except UnsafeWebhookUrl as unsafe:
        return unsafe
    return None


async def webhook_delivery_post(
    *, session: aiohttp.ClientSession, delivery: WebhookDelivery, token: uuid.UUID, lease_deadline: float
) -> AttemptOutcome | None:
    """POST a claimed delivery once, signed; None when too little of its lease is left to start.

    ``lease_deadline`` is ``time.monotonic()`` at which the claim's lease passes. The attempt's
    timeout is ``CSMS_WEBHOOK_TIMEOUT`` s, cut so that it ends ``LEASE_MARGIN_SECONDS`` before the
    lease does: no other claim can take the delivery while this attempt may still be sending it.
    """
    budget = min(settings.CSMS_WEBHOOK_TIMEOUT, lease_deadline - LEASE_MARGIN_SECONDS - time.monotonic())
    if budget < MIN_ATTEMPT_SECONDS:
        return None
    started, attempted_at = time.monotonic(), timezone.now()
    status_code: int | None = None
    retry_after: float | None = None
    signature = subscription_signature_header(
        subscription=delivery.subscription, body=delivery.body, timestamp=int(time.time())
    )
    headers = {
        "Content-Type": "application/json",
        "X-Dynamo-Signature": signature,
        "X-Dynamo-Event-Id": str(delivery.event_id),
    }
    try:
        async with session.post(
            delivery.subscription.url,
            data=delivery.body.encode(),
            headers=headers,
            allow_redirects=False,
            timeout=aiohttp.ClientTimeout(total=budget),
        ) as response:
            status_code = response.status
            location = response.headers.get("Location", "")
            if status_code in RETRY_AFTER_STATUSES:
                retry_after = retry_after_seconds(response.headers.get("Retry-After", ""))
        error = "" if 200 <= status_code < 300 else f"HTTP {status_code}"
        if 300 <= status_code < 400:
            error += redirect_told(location)
    except TimeoutError:
        error = f"TimeoutError: no answer within {budget:.1f} s"
    except Exception as failure:  # connection refused, reset, bad TLS, an answer that is not HTTP, ...
        error = failure_told(failure, delivery.subscription.url)
    return AttemptOutcome(
        delivery=delivery,
        token=token,
        attempted_at=attempted_at,
        status_code=status_code,
        error=error,
        duration_ms=round((time.monotonic() - started) * 1000, 2),
        retry_after=retry_after,
    )


# The answers whose Retry-After says when the receiver takes deliveries again (RFC 9110 §10.2.3).
RETRY_AFTER_STATUSES = {429, 503}


def retry_after_seconds(value: str) -> float | None:
    """A Retry-After header's wait from now in seconds: delay-seconds (digits) or an HTTP date (a date
    passed: 0); None when there is none or it is neither. Unbounded: the retry's rule bounds it
    (``services._attempt_result``)."""
    value = value.strip()
    if not value:
        return None
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # "-0000": UTC, as HTTP dates are
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - timezone.now()).total_seconds())


def failure_told(failure: Exception, url: str) -> str:
    """What an attempt's error says of a failed POST to ``url``: the exception's type and text, without
    the secrets the URL may hold (``webhook_url_redacted``). The client's error for an answer it cannot
    read (a header over 8,190 bytes, a status line that is not one) named the request's URL whole, and
    the deliveries' list, a delivery's page and the dashboard show the error to whoever may see them."""
    if isinstance(failure, aiohttp.ClientResponseError):
        return f"{type(failure).__name__}: {failure.status}, message={failure.message!r}"
    return f"{type(failure).__name__}: {failure}".replace(url, webhook_url_redacted(url))


# A redirect's target as recorded in an attempt's error: at most this many characters.
REDIRECT_SHOWN_CHARS = 300


def redirect_told(location: str) -> str:
    """What an attempt's error adds to a redirect's ``HTTP 3xx``: where the receiver sent it (without
    the secrets a URL may hold, ``webhook_url_redacted``), and that it was not followed. An operator
    read only ``HTTP 301`` (a receiver moved to https, say) and could not tell where to."""
    if not location:
        return " (a redirect, not followed)"
    shown = webhook_url_redacted(location.strip())
    if len(shown) > REDIRECT_SHOWN_CHARS:
        shown = shown[:REDIRECT_SHOWN_CHARS] + "…"
    return f" (a redirect to {shown}, not followed: change the subscription's URL if the receiver moved)"


def claimed_urls(claim: Claim) -> set[str]:
    """The receiver URLs of a claim's deliveries, each once."""
    return {delivery.subscription.url for delivery in claim.deliveries}


def refusal(delivery: WebhookDelivery, token: uuid.UUID, refused: UnsafeWebhookUrl) -> AttemptOutcome:
    """The attempt the URL guard stopped: permanent, unless the host did not resolve (retried)."""
    return AttemptOutcome(
        delivery=delivery,
        token=token,
        attempted_at=timezone.now(),
        status_code=None,
        error=str(refused),
        duration_ms=0.0,
        refused=not isinstance(refused, WebhookHostUnresolved),
    )


async def claim_deliver(claim: Claim) -> list[AttemptOutcome]:
    """POST every delivery of a claim at once (the claim bounds how many go to one receiver).

    Deliveries with an outcome are the ones attempted; the caller releases the others.
    """
    lease_deadline = time.monotonic() + (claim.expires_at - timezone.now()).total_seconds()
    resolver = PinnedResolver()
    refused = await refused_urls(claimed_urls(claim), resolver)
    outcomes = [
        refusal(d, claim.token, refused[d.subscription.url]) for d in claim.deliveries if d.subscription.url in refused
    ]
    async with client_session(max_connections=max(1, len(claim.deliveries)), resolver=resolver) as session:
        posted = await asyncio.gather(
            *(
                webhook_delivery_post(session=session, delivery=d, token=claim.token, lease_deadline=lease_deadline)
                for d in claim.deliveries
                if d.subscription.url not in refused
            )
        )
    return outcomes + [outcome for outcome in posted if outcome]


class DeliveryEngine:
    """The webhook worker's delivery loop, in a thread with its own asyncio loop.

    1. Claim as many due deliveries as there are free slots (``max_in_flight``), at most as many
       per subscription as it has free (``per_receiver``), the receivers with fewest in flight first and
       each one's oldest due first: first attempts and retries alike, so retries drain as fast as new
       events. A receiver's second and further deliveries in flight leave ``reserve`` slots (a quarter)
       to receivers with nothing in flight, so slow receivers, however many, never hold every slot
       while fewer than ``reserve`` of them hang at once.
    2. POST each at once on the shared keep-alive session; a semaphore per subscription keeps at
       most ``per_receiver`` in flight to one receiver, so a slow receiver holds only its own slots.
    3. Record the outcomes in batches, fenced by each claim's lease token.
    4. Wait to be woken (a new event, a finished delivery) or ``poll_seconds`` (due retries), and
       claim again, at most every ``CLAIM_INTERVAL_SECONDS``.
    """

    def __init__(self, *, max_in_flight: int, per_receiver: int, poll_seconds: float) -> None:
        self.max_in_flight = max_in_flight
        self.per_receiver = per_receiver
        # The slots kept for receivers with nothing in flight: a receiver's further deliveries take only
        # the others, so slow receivers, however many, leave a receiver that answers its own slots.
        self.reserve = max(1, max_in_flight // RESERVED_SHARE)
        self.poll_seconds = poll_seconds
        self._db = ThreadPoolExecutor(max_workers=1, thread_name_prefix="webhook-db")
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._stopping = False
        self._in_flight: Counter[uuid.UUID] = Counter()
        self._receivers: dict[uuid.UUID, asyncio.Semaphore] = {}
        self._sending: set[asyncio.Task[None]] = set()
        self._outcomes: list[AttemptOutcome] = []
        self._unsent: list[tuple[uuid.UUID, uuid.UUID]] = []
        self._started = threading.Event()
        self._resolver = PinnedResolver()
        self._checks: dict[str, asyncio.Future[UnsafeWebhookUrl | None]] = {}  # URL guards under way, by URL
        # The URL guards' DNS lookups, in threads of their own: one per receiver at a time (``_check``), for
        # receivers with deliveries in flight, so at most ``max_in_flight``; no lookup waits for another's
        # thread. In the loop's executor (cores + 4 threads) the lookups of as many receivers whose name
        # servers did not answer held every thread, and no other receiver was looked up, nor sent anything,
        # until one of them failed (seconds), at every claim. Threads are started as lookups need them.
        self._lookups = ThreadPoolExecutor(max_workers=max_in_flight, thread_name_prefix="webhook-dns")

    def start(self) -> None:
        self._thread = threading.Thread(target=asyncio.run, args=(self._run(),), name="webhook-engine", daemon=True)
        self._thread.start()
        self._started.wait(timeout=10)

    def wake(self) -> None:
        """Thread-safe: claim now rather than at the next poll."""
        if self._loop and self._wake:
            self._loop.call_soon_threadsafe(self._wake.set)

    def stop(self, timeout: float) -> None:
        """Claim no more; finish the attempts in flight (each ends within its timeout) and record them."""
        if self._loop and self._thread:
            self._loop.call_soon_threadsafe(self._begin_stop)
            self._thread.join(timeout=timeout)
        self._db.submit(_connection_closed)  # the database thread's connection, back to the pool
        self._db.shutdown(wait=True)
        self._lookups.shutdown(wait=False, cancel_futures=True)  # a hung lookup ends with its DNS timeout

    def _begin_stop(self) -> None:
        self._stopping = True
        if self._wake:
            self._wake.set()

    async def _in_db(self, function: Callable[..., T], **kwargs: Any) -> T:
        """Run a service in the engine's database thread; after a database error, drop its connection."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._db, partial(function, **kwargs))
        except DatabaseError:
            await loop.run_in_executor(self._db, _connection_closed)
            raise

    async def _run(self) -> None:
        self._loop, self._wake = asyncio.get_running_loop(), asyncio.Event()
        self._started.set()
        async with client_session(max_connections=self.max_in_flight, resolver=self._resolver) as session:
            recorder = asyncio.create_task(self._record_loop())
            while not self._stopping:
                self._wake.clear()
                try:
                    await self._claim_and_send(session)
                except Exception:
                    logger.exception("Webhook claim failed; trying again in %s s", self.poll_seconds)
                    await asyncio.sleep(self.poll_seconds)
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=self.poll_seconds)
                await asyncio.sleep(CLAIM_INTERVAL_SECONDS)
            await asyncio.gather(*self._sending)
            await recorder

    async def _claim_and_send(self, session: aiohttp.ClientSession) -> None:
        free = self.max_in_flight - sum(self._in_flight.values())
        if free <= 0:
            return
        started = time.monotonic()
        claim = await self._in_db(
            webhook_deliveries_claim,
            limit=free,
            per_receiver=self.per_receiver,
            in_flight=dict(self._in_flight),
            reserve=self.reserve,
        )
        if not claim.deliveries:
            return
        lease_deadline = started + settings.CSMS_WEBHOOK_CLAIM_LEASE_SECONDS
        # Each receiver's URL guard runs on its own, awaited by that receiver's deliveries only: the
        # claim went on to send once every receiver's DNS had answered, so one receiver whose name
        # servers took seconds to answer (or to fail) held up every other receiver's deliveries, and
        # every later claim holding one of its events again.
        checks = {url: self._check(url) for url in claimed_urls(claim)}
        for delivery in claim.deliveries:
            self._in_flight[delivery.subscription_id] += 1
            task = asyncio.create_task(
                self._send(session, delivery, claim.token, lease_deadline, checks[delivery.subscription.url])
            )
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    def _check(self, url: str) -> asyncio.Future[UnsafeWebhookUrl | None]:
        """The URL guard for ``url``: the one under way, if a claim started it and it has not answered, or
        a new one. Each claim looked the host up again, in a thread of the loop's executor (cores + 4 of
        them), while the receiver's earlier lookups still waited: a receiver whose name servers did not
        answer, sent an event every claim, held every thread, and no other receiver was sent anything."""
        check = self._checks.get(url)
        if check is None:
            check = self._checks[url] = asyncio.ensure_future(url_refusal(url, self._resolver, self._lookups))
            check.add_done_callback(lambda _: self._checks.pop(url, None))  # the next claim looks up anew
        return check

    async def _send(
        self,
        session: aiohttp.ClientSession,
        delivery: WebhookDelivery,
        token: uuid.UUID,
        lease_deadline: float,
        check: asyncio.Future[UnsafeWebhookUrl | None],
    ) -> None:
        receiver = delivery.subscription_id
        slots = self._receivers.get(receiver) or self._receivers.setdefault(
            receiver, asyncio.Semaphore(self.per_receiver)
        )
        try:
            try:
                refused = await asyncio.shield(check)  # shared by the deliveries claimed while it runs
            except Exception:
                logger.exception("Checking the webhook URL of subscription %s failed; sending it later", receiver)
                self._unsent.append((token, delivery.id))
                return
            async with slots:
                if refused is not None:
                    outcome: AttemptOutcome | None = refusal(delivery, token, refused)
                else:
                    outcome = await webhook_delivery_post(
                        session=session, delivery=delivery, token=token, lease_deadline=lease_deadline
                    )
            if outcome:
                self._outcomes.append(outcome)
            else:
                self._unsent.append((token, delivery.id))
        finally:
            self._in_flight[receiver] -= 1
            if not self._in_flight[receiver]:
                del self._in_flight[receiver], self._receivers[receiver]
            if self._wake:
                self._wake.set()

    async def _record_loop(self) -> None:
        while not (self._stopping and not self._sending and not self._outcomes and not self._unsent):
            await asyncio.sleep(RECORD_INTERVAL_SECONDS)
            try:
                await self._record()
            except Exception:
                logger.exception("Recording webhook attempts failed; trying again")

    async def _record(self) -> None:
        while self._outcomes:
            batch = self._outcomes[:RECORD_BATCH]
            await self._in_db(webhook_attempts_record, outcomes=batch)
            del self._outcomes[: len(batch)]
        unsent, self._unsent = self._unsent, []
        for token in {token for token, _ in unsent}:
            ids = [delivery_id for held_by, delivery_id in unsent if held_by == token]
            await self._in_db(webhook_deliveries_release, token=token, delivery_ids=ids)


def _connection_closed() -> None:
    """Close the calling thread's database connection (back to the pool). Not ``connection.close``
    handed to a thread: that bound method is the connection of the thread that names it (``connection``
    stands for the current thread's), and run in another it raised Django's "objects created in a
    thread can only be used in that same thread": the engine's database thread kept its connection
    (a pool slot taken for good once the thread ended) and a database error was logged as that one."""
    connection.close()


_engine: DeliveryEngine | None = None


def engine_start() -> DeliveryEngine:
    """Start this process's delivery engine (the webhook worker does, when it is ready)."""
    global _engine
    if _engine is None:
        _engine = DeliveryEngine(
            max_in_flight=settings.CSMS_WEBHOOK_MAX_IN_FLIGHT,
            per_receiver=settings.CSMS_WEBHOOK_MAX_IN_FLIGHT_PER_RECEIVER,
            poll_seconds=settings.CSMS_WEBHOOK_SWEEP_INTERVAL,
        )
        _engine.start()
    return _engine


def engine_wake() -> None:
    """Wake this process's engine, if it runs one (a task in another kind of worker does nothing)."""
    if _engine is not None:
        _engine.wake()


def engine_stop() -> None:
    global _engine
    if _engine is not None:
        _engine.stop(timeout=settings.CSMS_WEBHOOK_TIMEOUT + 5)
        _engine = None


def webhook_deliveries_send() -> int:
    """Claim due deliveries, POST them at once and record them; returns how many were attempted.

    One pass, for tests and one-off use; the webhook worker runs ``delivery.DeliveryEngine``.
    """
    claim = webhook_deliveries_claim(
        limit=settings.CSMS_WEBHOOK_MAX_IN_FLIGHT,
        per_receiver=settings.CSMS_WEBHOOK_MAX_IN_FLIGHT_PER_RECEIVER,
    )
    # A thread of its own for the event loop: the caller may be running one already.
    with ThreadPoolExecutor(max_workers=1) as runner:
        outcomes = runner.submit(asyncio.run, claim_deliver(claim)).result()
    webhook_attempts_record(outcomes=outcomes)
    attempted = {outcome.delivery.id for outcome in outcomes}
    unsent = [d.id for d in claim.deliveries if d.id not in attempted]
    webhook_deliveries_release(token=claim.token, delivery_ids=unsent)
    return len(outcomes)
