"""Webhooks in the admin: subscriptions are made from checkboxes under the API's rule for event
names; re-sending a delivery needs the change permission; payloads are readable."""

from __future__ import annotations

import re
import uuid

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.models import Permission, User
from django.contrib.messages import get_messages
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from csms.staff_groups import OPERATOR, SUPPORT, staff_user_create
from kernel.tests.page_forms import form_as_posted
from webhooks import services
from webhooks.admin import BEING_SENT_MANY
from webhooks.models import DeliveryState, EventType, WebhookAttempt, WebhookDelivery, WebhookSubscription

pytestmark = pytest.mark.django_db

DELIVERIES = "/admin/webhooks/webhookdelivery/"


@pytest.fixture
def failed(settings, django_capture_on_commit_callbacks) -> WebhookDelivery:
    """A delivery that gave up after 8 attempts, with one attempt on record."""
    settings.CSMS_WEBHOOK_ALLOW_PRIVATE = True
    services.webhook_subscription_create(url="http://127.0.0.1:9/hooks", events=["charge_point.offline"])
    with django_capture_on_commit_callbacks(execute=False):
        (delivery,) = services.webhook_event_emit(event_type="charge_point.offline", data={"charge_point_id": "CP-<1>"})
    delivery.state, delivery.attempts, delivery.last_status_code = DeliveryState.FAILED, 8, 500
    delivery.save()
    WebhookAttempt.objects.create(delivery=delivery, attempted_at=delivery.created_at, status_code=500, duration_ms=3)
    return delivery


def staff(client: Client, *codenames: str) -> Client:
    user = User.objects.create_user("staff", "staff@example.com", "pw", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    client.force_login(user)
    return client


def messages_of(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def assert_queued_again(delivery: WebhookDelivery, callbacks: list) -> None:
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts) == (DeliveryState.PENDING, 0)
    assert len(callbacks) == 1  # the delivery task is queued when the request's transaction commits


def test_the_resend_button_queues_the_delivery_again(client, failed, django_capture_on_commit_callbacks):
    operator = staff(client, "view_webhookdelivery", "change_webhookdelivery")
    page = operator.get(f"{DELIVERIES}{failed.pk}/change/").content.decode()
    assert f'action="{DELIVERIES}{failed.pk}/resend/"' in page
    assert 'name="_save"' not in page  # nothing on the page to save

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = operator.post(f"{DELIVERIES}{failed.pk}/resend/", follow=True)
    assert response.redirect_chain[-1][0] == f"{DELIVERIES}{failed.pk}/change/"
    assert messages_of(response) == ["Queued the charge_point.offline delivery again."]
    assert_queued_again(failed, callbacks)


def test_the_resend_action_queues_every_selected_delivery(client, failed, django_capture_on_commit_callbacks):
    operator = staff(client, "view_webhookdelivery", "change_webhookdelivery")
    action_form = operator.get(DELIVERIES).context["action_form"]
    assert "resend" in [name for name, _ in action_form.fields["action"].choices]
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = operator.post(DELIVERIES, {"action": "resend", ACTION_CHECKBOX_NAME: [failed.pk]}, follow=True)
    assert messages_of(response) == ["Queued 1 deliveries again."]
    assert_queued_again(failed, callbacks)


def test_the_resend_action_on_every_failed_delivery_is_one_update_and_one_wake_up(
    client, failed, django_capture_on_commit_callbacks
):
    """After a receiver's day-long outage an operator selects every failed delivery (thousands) and
    re-sends them: each was an UPDATE and a wake-up of its own, a minute's request for 20 000."""
    operator = staff(client, "view_webhookdelivery", "change_webhookdelivery")
    more = WebhookDelivery.objects.bulk_create(
        WebhookDelivery(
            event_id=uuid.uuid4(),
            event_type=failed.event_type,
            subscription=failed.subscription,
            body=failed.body,
            state=DeliveryState.FAILED,
            attempts=8,
            next_attempt_at=failed.next_attempt_at,
        )
        for _ in range(30)
    )

    def resend(pks: list) -> tuple[int, list]:
        with CaptureQueriesContext(connection) as queries, django_capture_on_commit_callbacks() as callbacks:
            operator.post(DELIVERIES, {"action": "resend", ACTION_CHECKBOX_NAME: pks})
        return len(queries), callbacks

    one, _ = resend([failed.pk])
    WebhookDelivery.objects.update(state=DeliveryState.FAILED, attempts=8)
    every, callbacks = resend([failed.pk, *(delivery.pk for delivery in more)])
    assert every == one
    assert len(callbacks) == 1
    assert set(WebhookDelivery.objects.values_list("state", "attempts")) == {(DeliveryState.PENDING, 0)}


def test_the_resend_action_leaves_a_delivery_being_sent_to_its_attempt(
    client, failed, django_capture_on_commit_callbacks
):
    """A delivery a worker holds (claimed, its attempt under way) was made due at once by a re-send,
    sent a second time beside the first, whose result was then dropped: it is left to its attempt."""
    with django_capture_on_commit_callbacks(execute=False):
        (sending,) = services.webhook_event_emit(event_type="charge_point.offline", data={"charge_point_id": "CP-2"})
    claim = services.webhook_deliveries_claim(limit=10, per_receiver=10)
    assert [d.pk for d in claim.deliveries] == [sending.pk]

    operator = staff(client, "view_webhookdelivery", "change_webhookdelivery")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        selected = {"action": "resend", ACTION_CHECKBOX_NAME: [failed.pk, sending.pk]}
        response = operator.post(DELIVERIES, selected, follow=True)
    assert messages_of(response) == ["Queued 1 deliveries again.", BEING_SENT_MANY.format(count=1)]
    assert_queued_again(failed, callbacks)
    held = WebhookDelivery.objects.get(pk=sending.pk)
    assert (held.lease_token, held.next_attempt_at) == (claim.token, claim.expires_at)  # still its claim's


def test_a_user_who_may_only_look_cannot_resend(client, failed):
    support = staff(client, "view_webhookdelivery", "view_webhooksubscription")
    page = support.get(f"{DELIVERIES}{failed.pk}/change/")
    assert page.status_code == 200
    assert "/resend/" not in page.content.decode()
    assert support.post(f"{DELIVERIES}{failed.pk}/resend/").status_code == 403

    changelist = support.get(DELIVERIES)
    action_form = changelist.context["action_form"]
    offered = [name for name, _ in action_form.fields["action"].choices] if action_form else []
    assert "resend" not in offered
    support.post(DELIVERIES, {"action": "resend", ACTION_CHECKBOX_NAME: [failed.pk]})
    failed.refresh_from_db()
    assert failed.state == DeliveryState.FAILED


def test_resend_is_post_only(client, failed):
    operator = staff(client, "view_webhookdelivery", "change_webhookdelivery")
    assert operator.get(f"{DELIVERIES}{failed.pk}/resend/").status_code == 405


def test_resend_of_a_delivery_that_does_not_exist_is_a_404(client, failed):
    operator = staff(client, "view_webhookdelivery", "change_webhookdelivery")
    assert operator.post(f"{DELIVERIES}not-a-uuid/resend/").status_code == 404
    assert operator.post(f"{DELIVERIES}00000000-0000-0000-0000-000000000000/resend/").status_code == 404


def test_the_delivery_page_pretty_prints_the_payload_and_lists_attempts(client, failed):
    support = staff(client, "view_webhookdelivery")
    page = support.get(f"{DELIVERIES}{failed.pk}/change/").content.decode()
    assert '<pre class="webhook-payload">{\n  &quot;id&quot;: ' in page
    assert "&quot;charge_point_id&quot;: &quot;CP-&lt;1&gt;&quot;" in page  # escaped, not markup
    assert "Failed" in page and "500" in page


def test_failed_deliveries_are_one_filter_away(client, failed, settings):
    settings.CSMS_WEBHOOK_ALLOW_PRIVATE = True
    services.webhook_subscription_create(url="http://127.0.0.1:9/other", events=["charge_point.offline"])
    services.webhook_event_emit(event_type="charge_point.offline", data={"charge_point_id": "CP-2"})
    support = staff(client, "view_webhookdelivery")
    everything = support.get(DELIVERIES)
    assert everything.context["cl"].result_count == 3
    assert "?state__exact=failed" in everything.content.decode()
    found = support.get(DELIVERIES, {"state__exact": "failed"}).context["cl"].result_list
    assert list(found) == [failed]
    by_subscription = support.get(DELIVERIES, {"subscription__id__exact": str(failed.subscription_id)})
    assert list(by_subscription.context["cl"].result_list)[-1] == failed
    assert support.get(DELIVERIES, {"event_type__exact": "charge_point.online"}).context["cl"].result_count == 0


def test_the_staff_groups_decide_who_may_resend(client, failed, django_capture_on_commit_callbacks):
    support = staff_user_create(username="bob", password="a-long-password-1", group=SUPPORT)
    client.force_login(support)
    assert client.get(f"{DELIVERIES}{failed.pk}/change/").status_code == 200
    assert client.get("/admin/chargepoints/ocppmessage/").status_code == 200
    assert client.post(f"{DELIVERIES}{failed.pk}/resend/").status_code == 403

    client.force_login(staff_user_create(username="alice", password="a-long-password-1", group=OPERATOR))
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert client.post(f"{DELIVERIES}{failed.pk}/resend/").status_code == 302
    assert_queued_again(failed, callbacks)


SUBSCRIPTIONS = "/admin/webhooks/webhooksubscription/"


@pytest.fixture
def superuser(client: Client, settings) -> Client:
    settings.CSMS_WEBHOOK_ALLOW_PRIVATE = True
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    return client


def subscription_form(**fields) -> dict:
    return {"url": "http://127.0.0.1:9/hooks", "active": "on", "description": "", **fields}


def test_the_subscription_form_has_a_checkbox_per_event_type_and_no_json_to_type(superuser):
    page = superuser.get(f"{SUBSCRIPTIONS}add/").content.decode()
    offered = re.findall(r'<input type="checkbox" name="events" value="([^"]+)"', page)
    assert offered == EventType.values
    assert "<textarea" not in page
    assert "previous_secret" not in page and 'name="secret"' not in page


def test_a_subscription_added_in_the_admin_keeps_the_checked_events(superuser):
    response = superuser.post(
        f"{SUBSCRIPTIONS}add/", subscription_form(events=["charge_point.offline", "transaction.ended"]), follow=True
    )
    subscription = WebhookSubscription.objects.get()
    assert subscription.events == ["charge_point.offline", "transaction.ended"]
    assert subscription.secret.startswith("whsec_")
    assert messages_of(response)[0] == f"The signing secret, shown only now: {subscription.secret}"
    assert "charge_point.offline, transaction.ended" in response.content.decode()  # the list's events column


def test_an_event_posted_twice_in_the_admin_is_kept_once(superuser):
    events = ["transaction.ended", "charge_point.offline", "transaction.ended"]
    superuser.post(f"{SUBSCRIPTIONS}add/", subscription_form(events=events))
    assert WebhookSubscription.objects.get().events == ["transaction.ended", "charge_point.offline"]


def form_errors(response) -> list[str]:
    return response.context["adminform"].form.errors.get("events", [])


def test_an_event_name_the_csms_never_sends_is_refused_with_the_apis_words(superuser, api_client):
    names = ["charge_point.offline", "charge_point.exploded"]
    response = superuser.post(f"{SUBSCRIPTIONS}add/", subscription_form(events=names))
    assert response.status_code == 200
    (error,) = form_errors(response)
    assert error.startswith("Not an event type: charge_point.exploded. The event types are charge_point.offline,")
    assert not WebhookSubscription.objects.exists()

    answer = api_client.post("/api/v1/webhooks/", {"url": "https://example.com/h", "events": names}, format="json")
    assert answer.status_code == 400
    assert answer.json()["details"] == {"events": [error]}  # one rule, one message


def test_a_subscription_needs_at_least_one_event(superuser, api_client):
    response = superuser.post(f"{SUBSCRIPTIONS}add/", subscription_form())
    assert form_errors(response) == ["Choose at least one event type."]
    answer = api_client.post("/api/v1/webhooks/", {"url": "https://example.com/h", "events": []}, format="json")
    assert answer.json()["details"] == {"events": ["Choose at least one event type."]}


def test_editing_a_subscription_with_a_name_that_is_no_event_type_says_it_is_dropped(superuser):
    subscription = WebhookSubscription.objects.create(
        url="http://127.0.0.1:9/hooks", events=["charge_point.online", "<b>charger.exploded</b>"], secret="whsec_x"
    )
    page = superuser.get(f"{SUBSCRIPTIONS}{subscription.pk}/change/").content.decode()
    assert "Not event types, removed when saved: &lt;b&gt;charger.exploded&lt;/b&gt;." in page
    assert re.search(r'value="charge_point.online"[^>]*checked', page)

    superuser.post(f"{SUBSCRIPTIONS}{subscription.pk}/change/", subscription_form(events=["charge_point.online"]))
    subscription.refresh_from_db()
    assert subscription.events == ["charge_point.online"]
    assert subscription.secret == "whsec_x"


def test_a_delivery_search_finds_an_event_id_and_a_receiver_by_indexes_not_by_scanning_every_delivery(
    client, failed, settings
):
    """A search was an ILIKE of every delivery's event id as text, through the join to the
    subscriptions: a scan of the table (0.18 s a page at 100,000 deliveries, seconds at millions).
    A whole event id or delivery id is looked up by its index; part of a receiver's URL, through
    the subscriptions first."""
    ops = staff(client, "view_webhookdelivery", "change_webhooksubscription")
    for term, found in (
        (str(failed.event_id), 1),
        (str(failed.event_id).upper(), 1),
        (str(failed.pk), 1),
        ("127.0.0.1:9", 1),
        (str(uuid.uuid4()), 0),
        ("nowhere", 0),
    ):
        with CaptureQueriesContext(connection) as queries:
            page = ops.get(f"{DELIVERIES}?q={term}")
        assert page.status_code == 200 and page.context["cl"].result_count == found, term
        listed = [q["sql"] for q in queries.captured_queries if 'FROM "webhooks_webhookdelivery"' in q["sql"]]
        assert (listed or not found) and not [sql for sql in listed if "LIKE" in sql or "::text" in sql], listed


def test_deleting_a_subscription_counts_its_deliveries_instead_of_listing_each(
    superuser, failed, django_assert_max_num_queries
):
    """The confirmation page listed every delivery and attempt of the receiver, each read as an
    instance (1,000,000 deliveries: 86 s and 188 MB), and the delete read them all again to cascade.
    The page counts them; the delete is one statement per table."""
    subscription = failed.subscription
    WebhookDelivery.objects.bulk_create(
        WebhookDelivery(
            subscription=subscription,
            event_id=uuid.uuid4(),
            event_type=failed.event_type,
            body="{}",
            next_attempt_at=failed.next_attempt_at,
        )
        for _ in range(40)
    )
    page_url = f"/admin/webhooks/webhooksubscription/{subscription.pk}/delete/"
    with django_assert_max_num_queries(12):
        page = superuser.get(page_url)
    text = page.content.decode()
    assert page.status_code == 200 and "41 webhook deliveries, with their attempts" in text
    assert text.count("webhookdelivery/") <= 1
    with django_assert_max_num_queries(16):
        assert superuser.post(page_url, {"post": "yes"}).status_code == 302
    assert not WebhookSubscription.objects.exists() and not WebhookDelivery.objects.exists()
    assert not WebhookAttempt.objects.exists()


def test_a_subscription_deactivated_while_its_page_is_open_stays_off_when_the_operator_saves_a_description(
    superuser,
):
    """The form posted every field as the page showed it, and the save wrote them all: a receiver its
    integrator turned off through the API while the page was open was turned on again (and sent
    events) by a change of its description. Only what the operator changed on the page is written,
    on the subscription as it stands."""
    subscription = services.webhook_subscription_create(url="http://127.0.0.1:9/hooks", events=["transaction.ended"])
    url = f"{SUBSCRIPTIONS}{subscription.pk}/change/"
    page = superuser.get(url).content.decode()

    services.webhook_subscription_update(  # the integrator, through the API, meanwhile
        subscription=WebhookSubscription.objects.get(pk=subscription.pk), active=False
    )
    response = superuser.post(url, form_as_posted(page, "webhooksubscription_form", description="Billing system"))

    assert response.status_code == 302
    subscription.refresh_from_db()
    assert (subscription.active, subscription.description) == (False, "Billing system")
    assert subscription.events == ["transaction.ended"]


def test_a_subscription_added_from_a_prefilled_page_keeps_what_the_page_showed(superuser):
    """An add page prefilled from its URL (the admin's ``?description=...``): a new subscription's id
    is set before it is saved (a UUID), and the form took it for a saved row, whose save writes only
    what the operator changed: the description shown, left as it was, was saved empty."""
    page = superuser.get(f"{SUBSCRIPTIONS}add/?description=Fleet+A").content.decode()
    posted = form_as_posted(page, "webhooksubscription_form", url="http://127.0.0.1:9/hooks")
    superuser.post(f"{SUBSCRIPTIONS}add/", {**posted, "events": ["transaction.ended"]})
    assert WebhookSubscription.objects.values_list("description", "events").get() == ("Fleet A", ["transaction.ended"])
