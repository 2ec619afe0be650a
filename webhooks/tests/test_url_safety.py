"""Webhook targets: every form of an internal address is refused, credentials and bad ports too, the
admin checks like the API, a delivery connects to the address that was checked (the delivery
client's resolver answers only with it), and a delivery the guard refuses fails at once."""

from __future__ import annotations

import asyncio
import http.server
import shutil
import socket
import ssl
import subprocess
import threading

import pytest
from django.contrib.auth.models import User

from webhooks import services
from webhooks.delivery import webhook_deliveries_send
from webhooks.models import WebhookDelivery, WebhookSubscription
from webhooks.pinned_resolver import PinnedResolver
from webhooks.url_safety import (
    UnsafeWebhookUrl,
    WebhookHostUnresolved,
    WebhookTarget,
    webhook_target_resolve,
    webhook_url_check,
)

INTERNAL_FORMS = [
    "http://[64:ff9b::7f00:1]/",  # NAT64 of 127.0.0.1
    "http://[64:ff9b::a9fe:a9fe]/",  # NAT64 of 169.254.169.254
    "http://[64:ff9b:1::808:808]/",  # local-use NAT64
    "http://[2002:7f00:1::1]/",  # 6to4 of 127.0.0.1
    "http://[2002:a00:1::1]/",  # 6to4 of 10.0.0.1
    "http://[::127.0.0.1]/",  # IPv4-compatible
    "http://[::10.0.0.8]/",
    "http://[::ffff:127.0.0.1]/",  # IPv4-mapped
    "http://[::ffff:169.254.169.254]/",
    "http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/",  # Teredo
    "http://[fd00::1]/",
    "http://2130706433/",  # 127.0.0.1 as one number
    "http://0x7f.1/",
    "http://100.64.0.1/",  # carrier-grade NAT
    "http://0.0.0.0/",
]
PUBLIC_FORMS = [
    "http://8.8.8.8/",
    "http://[64:ff9b::808:808]/",
    "http://[2002:808:808::1]/",
    "https://[2606:4700::1111]/",
]


@pytest.mark.parametrize("url", INTERNAL_FORMS)
def test_every_form_of_an_internal_address_is_refused(url, settings):
    settings.CSMS_WEBHOOK_ALLOW_PRIVATE = False
    with pytest.raises(UnsafeWebhookUrl, match="private, loopback or link-local"):
        webhook_url_check(url)


@pytest.mark.parametrize("url", PUBLIC_FORMS)
def test_public_addresses_in_the_same_forms_pass(url, settings):
    settings.CSMS_WEBHOOK_ALLOW_PRIVATE = False
    assert webhook_target_resolve(url).addresses


@pytest.mark.parametrize("allow_private", [False, True])
@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://user:secret@8.8.8.8/hooks", "credentials"),
        ("https://user@8.8.8.8/hooks", "credentials"),
        ("https://8.8.8.8:99999/hooks", "port"),
        ("https://8.8.8.8:0/hooks", "port"),
        ("https://8.8.8.8:http/hooks", "port"),
        ("file:///etc/passwd", "http://"),
    ],
)
def test_credentials_and_bad_ports_are_refused_even_for_internal_receivers(url, reason, allow_private, settings):
    settings.CSMS_WEBHOOK_ALLOW_PRIVATE = allow_private
    with pytest.raises(UnsafeWebhookUrl, match=reason):
        webhook_url_check(url)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("https://8.8.8.8:99999/hooks", "The port must be a number from 1 to 65535."),
        (
            "https://user:pw@8.8.8.8/hooks",
            "The URL may not carry credentials (user:password@); the signature authenticates.",
        ),
    ],
)
def test_the_api_answers_a_bad_port_or_credentials_with_a_json_400_naming_url(api_client, url, message):
    response = api_client.post("/api/v1/webhooks/", {"url": url, "events": ["charge_point.online"]}, format="json")
    assert response.status_code == 400
    assert response.json() == {
        "error": "ValidationError",
        "message": "The request body is invalid.",
        "details": {"url": [message]},
    }
    assert not WebhookSubscription.objects.exists()


@pytest.mark.django_db
def test_changing_a_subscription_to_a_bad_port_is_a_json_400(api_client):
    subscription = WebhookSubscription.objects.create(url="https://8.8.8.8/h", events=["charge_point.online"])
    response = api_client.patch(
        f"/api/v1/webhooks/{subscription.pk}", {"url": "https://8.8.8.8:99999/h"}, format="json"
    )
    assert response.status_code == 400
    assert list(response.json()["details"]) == ["url"]


# --- The admin ---------------------------------------------------------------------------------


@pytest.fixture
def superuser_client(client, db):
    client.force_login(User.objects.create_superuser("root", password="pw"))
    return client


ADD = "/admin/webhooks/webhooksubscription/add/"


@pytest.mark.parametrize("url", ["http://169.254.169.254/latest", "http://[64:ff9b::7f00:1]/", "https://u:p@8.8.8.8/"])
def test_the_admin_refuses_what_the_api_refuses(superuser_client, url, settings):
    settings.CSMS_WEBHOOK_ALLOW_PRIVATE = False
    response = superuser_client.post(ADD, {"url": url, "events": '["charge_point.online"]', "active": "on"})
    assert response.status_code == 200
    assert "url" in response.context["adminform"].form.errors
    assert not WebhookSubscription.objects.exists()


def test_a_subscription_added_in_the_admin_gets_a_signing_secret_shown_once(superuser_client):
    response = superuser_client.post(
        ADD, {"url": "https://8.8.8.8/hooks", "events": ["charge_point.online"], "active": "on"}, follow=True
    )
    subscription = WebhookSubscription.objects.get()
    assert subscription.secret.startswith("whsec_") and len(subscription.secret) > 40
    assert subscription.secret in response.content.decode()
    assert (
        subscription.secret
        not in superuser_client.get(f"/admin/webhooks/webhooksubscription/{subscription.pk}/change/").content.decode()
    )


# --- Delivery ---------------------------------------------------------------------------------


class Listener:
    """An HTTP receiver on one loopback address, recording the Host header of each POST."""

    def __init__(self, address: str, port: int = 0, tls: ssl.SSLContext | None = None) -> None:
        hosts: list[str] = []
        self.hosts = hosts

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                hosts.append(self.headers["Host"])
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer((address, port), Handler)
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def tls(tmp_path, monkeypatch) -> ssl.SSLContext:
    """A server context with a self-signed certificate for hooks.rebind.test, trusted by clients
    (``SSL_CERT_FILE``); it records the SNI names it is asked for in ``tls.sni_names``."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=hooks.rebind.test",
            "-addext",
            "subjectAltName=DNS:hooks.rebind.test",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    context.sni_names = []  # type: ignore[attr-defined]
    context.sni_callback = lambda sock, name, ctx: context.sni_names.append(name)  # type: ignore[attr-defined]
    return context


def rebinding_dns(monkeypatch, tls: ssl.SSLContext | None = None) -> tuple[Listener, Listener]:
    """``hooks.rebind.test`` answers 127.0.0.2 to its first lookup and 127.0.0.3 to every later one;
    a receiver listens on the same port of each address."""
    checked = Listener("127.0.0.2", tls=tls)
    rebound = Listener("127.0.0.3", checked.port, tls=tls)
    lookups: list[str] = []
    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host != "hooks.rebind.test":
            return real_getaddrinfo(host, port, *args, **kwargs)
        lookups.append(address := "127.0.0.3" if lookups else "127.0.0.2")
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, port))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return checked, rebound


def deliver_once(url: str) -> WebhookDelivery:
    services.webhook_subscription_create(url=url, events=["charge_point.online"])
    services.webhook_event_emit(event_type="charge_point.online", data={})
    assert webhook_deliveries_send() == 1
    return WebhookDelivery.objects.get()


@pytest.mark.django_db
def test_a_delivery_connects_to_the_address_that_was_checked(monkeypatch, settings):
    settings.CSMS_WEBHOOK_ALLOW_PRIVATE = True  # both are loopback: what is tested is the pinning
    checked, rebound = rebinding_dns(monkeypatch)
    try:
        delivery = deliver_once(f"http://hooks.rebind.test:{checked.port}/h")
    finally:
        checked.close()
        rebound.close()
    assert (delivery.state, delivery.last_status_code, delivery.last_error) == ("delivered", 204, "")
    assert checked.hosts == [f"hooks.rebind.test:{checked.port}"]
    assert rebound.hosts == []


@pytest.mark.django_db
def test_an_https_delivery_to_the_checked_address_keeps_the_host_name_for_sni_and_the_certificate(
    monkeypatch, settings, tls
):
    settings.CSMS_WEBHOOK_ALLOW_PRIVATE = True
    checked, rebound = rebinding_dns(monkeypatch, tls)
    try:
        delivery = deliver_once(f"https://hooks.rebind.test:{checked.port}/h")
    finally:
        checked.close()
        rebound.close()
    assert (delivery.state, delivery.last_status_code, delivery.last_error) == ("delivered", 204, "")
    assert checked.hosts == [f"hooks.rebind.test:{checked.port}"]
    assert rebound.hosts == []
    assert tls.sni_names == ["hooks.rebind.test"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:9/h", "http://[64:ff9b::7f00:1]:9/h", "https://u:p@8.8.8.8/h", "http://8.8.8.8:99999/h"]
)
def test_a_delivery_the_guard_refuses_fails_at_once(url, settings):
    settings.CSMS_WEBHOOK_ALLOW_PRIVATE = False
    WebhookSubscription.objects.create(url=url, events=["charge_point.online"], secret="whsec_x")
    services.webhook_event_emit(event_type="charge_point.online", data={})
    assert webhook_deliveries_send() == 1
    delivery = WebhookDelivery.objects.get()
    assert (delivery.state, delivery.attempts, delivery.last_status_code) == ("failed", 1, None)
    assert delivery.last_error
    assert delivery.attempt_log.get().error == delivery.last_error


@pytest.mark.django_db
def test_a_host_that_does_not_resolve_is_retried(monkeypatch, settings):
    settings.CSMS_WEBHOOK_ALLOW_PRIVATE = False

    def no_answer(*args, **kwargs):
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    WebhookSubscription.objects.create(url="https://hooks.example.com/h", events=["charge_point.online"], secret="s")
    monkeypatch.setattr(socket, "getaddrinfo", no_answer)
    with pytest.raises(WebhookHostUnresolved):
        webhook_target_resolve("https://hooks.example.com/h")
    services.webhook_event_emit(event_type="charge_point.online", data={})
    assert webhook_deliveries_send() == 1
    delivery = WebhookDelivery.objects.get()
    assert (delivery.state, delivery.attempts) == ("pending", 1)
    assert delivery.last_error == "The host 'hooks.example.com' does not resolve."


def test_the_delivery_resolver_answers_only_with_the_vetted_addresses_of_a_pinned_host_and_port():
    resolver = PinnedResolver()
    resolver.pin(
        WebhookTarget(
            url="https://Bücher.example:8443/h",
            host="bücher.example",
            port=8443,
            addresses=("8.8.8.8", "2001:4860:4860::8888"),
        )
    )
    answers = asyncio.run(resolver.resolve("xn--bcher-kva.example", 8443, family=socket.AF_UNSPEC))
    assert [(a["hostname"], a["host"], a["port"], a["family"]) for a in answers] == [
        ("xn--bcher-kva.example", "8.8.8.8", 8443, socket.AF_INET),
        ("xn--bcher-kva.example", "2001:4860:4860::8888", 8443, socket.AF_INET6),
    ]
    assert [a["host"] for a in asyncio.run(resolver.resolve("xn--bcher-kva.example", 8443))] == ["8.8.8.8"]
    with pytest.raises(OSError, match="No vetted address"):
        asyncio.run(resolver.resolve("xn--bcher-kva.example", 443, family=socket.AF_UNSPEC))
    with pytest.raises(OSError, match="No vetted address"):
        asyncio.run(resolver.resolve("other.example", 8443, family=socket.AF_UNSPEC))
