"""Request bodies refused as they arrive (``kernel.request_bodies``), through a real daphne: a body
over its path's bound is answered 413 before the rest is sent, never stored whole first."""

from __future__ import annotations

import json
import socket
import time
import uuid

import pytest

pytestmark = pytest.mark.django_db(transaction=True)

# Enough for daphne to answer; a body over its bound was read to its end before (and stored in a
# temporary file past 100 kB): the answer never came while the rest was withheld.
ANSWER_WAIT = 20


def _answer_to(port: int, head: bytes, sent: bytes) -> bytes:
    """The start of the answer to a request whose headers are ``head`` and of whose body only
    ``sent`` is sent (the rest withheld, as a client still sending)."""
    with socket.create_connection(("127.0.0.1", port), timeout=ANSWER_WAIT) as client:
        client.sendall(head + sent)
        answer = b""
        try:
            while b"\r\n\r\n" not in answer and (data := client.recv(4096)):
                answer += data
        except TimeoutError:
            pass
        return answer


@pytest.mark.parametrize(
    ("path", "content_type", "length"),
    [
        ("/diagnostics/upload/any-token", "application/octet-stream", 10**10),  # a charger's upload: 200 MB
        ("/diagnostics/upload/any-token/diag.zip", "multipart/form-data; boundary=b", 10**10),
        ("/api/v1/chargepoints", "application/json", 3 * 2**20),  # DATA_UPLOAD_MAX_MEMORY_SIZE: 2.5 MB
        ("/api/v1/firmware", "application/json", 3 * 2**20),  # a firmware image comes as a form only
        ("/admin/login/", "application/x-www-form-urlencoded", 3 * 2**20),
        ("/healthz", "multipart/form-data; boundary=b", 3 * 2**20),
        ("/api/v1/firmware-not-a-page", "multipart/form-data; boundary=b", 3 * 2**20),
        ("/admin/maintenance/firmwarefile/", "multipart/form-data; boundary=b", 3 * 2**20),
        # A firmware image: CSMS_FIRMWARE_MAX_BYTES (512 MiB) and its form's lines; unbounded before.
        ("/api/v1/firmware", "multipart/form-data; boundary=b", 10**10),
        ("/api/v1/firmware/", "multipart/form-data; boundary=b", 10**10),
        ("/admin/maintenance/firmwarefile/add/", "multipart/form-data; boundary=b", 10**10),
        ("/admin/maintenance/firmwarefile/1/change/", "multipart/form-data; boundary=b", 10**10),
    ],
)
def test_a_body_announced_over_its_bound_is_refused_before_it_arrives(daphne, path, content_type, length):
    """No key, no token is checked before a body is in: 10 GB announced to any path filled the
    server's disk (Twisted's temporary file) before the view could say 413."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {length}\r\nExpect: 100-continue\r\n\r\n"
    ).encode()
    answer = _answer_to(daphne.port, head, b"x" * 65536)
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:100]
    assert b"100 Continue" not in answer
    body = _answer_to(daphne.port, head, b"").partition(b"\r\n\r\n")[2]
    upload = path.startswith("/diagnostics/") or length == 10**10
    assert json.loads(body)["error"] == ("RequestTooLarge" if upload else "PayloadTooLarge")


def test_a_chunked_body_is_refused_once_it_has_brought_more_than_its_bound(daphne):
    head = b"POST /api/v1/chargepoints HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"
    chunk = b"10000\r\n" + b"x" * 0x10000 + b"\r\n"
    answer = _answer_to(daphne.port, head, chunk * 48)  # 3 MB, and no last chunk
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:100]


@pytest.fixture(scope="module")
def small_firmware_daphne(daphne_factory):
    return daphne_factory(CSMS_FIRMWARE_MAX_BYTES="2000000")


def _firmware_form(size: int) -> tuple[str, bytes]:
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + b"\x7fELF"
        + b"\0" * (size - 4)
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return boundary, body


def test_a_firmware_image_over_its_setting_is_refused_as_it_arrives_or_by_its_exact_size(
    small_firmware_daphne, api_key
):
    """CSMS_FIRMWARE_MAX_BYTES bounds an image: a form far over it is refused on its Content-Length
    before any key is checked; one just over it (within the form's room) by the image's own size."""
    for size, answer in ((2_000_000, b"HTTP/1.1 201 "), (2_000_001, b"HTTP/1.1 413 "), (3_000_000, b"HTTP/1.1 413 ")):
        boundary, body = _firmware_form(size)
        head = (
            f"POST /api/v1/firmware HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {api_key}\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        got = _answer_to(small_firmware_daphne.port, head, body if size < 3_000_000 else b"")
        assert got.startswith(answer), (size, got[:300])
    assert json.loads(got.partition(b"\r\n\r\n")[2])["error"] == "RequestTooLarge"


def test_bodies_within_their_bounds_are_served_as_before(daphne, api_key):
    """A firmware image over 2.5 MB is still taken (a form to the firmware pages has its own
    bound, CSMS_FIRMWARE_MAX_BYTES), as is a charger's upload within CSMS_DIAGNOSTICS_MAX_BYTES
    (refused for its token)."""
    boundary = uuid.uuid4().hex
    image = b"\x7fELF" + b"\0" * (3 * 2**20)
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + image
        + f"\r\n--{boundary}--\r\n".encode()
    )
    head = (
        f"POST /api/v1/firmware HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {api_key}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    assert _answer_to(daphne.port, head, body).startswith(b"HTTP/1.1 201 ")
    log = b"y" * (3 * 2**20)
    head = f"PUT /diagnostics/upload/not-a-token HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(log)}\r\n\r\n"
    assert _answer_to(daphne.port, head.encode(), log).startswith(b"HTTP/1.1 403 ")


def test_a_client_still_sending_its_refused_body_reads_the_413(daphne):
    """Round 44's CI: a plain close while the client was still sending made the kernel answer its
    next bytes with a reset, which discarded the 413 before the client read it ("connection reset"
    for a 3 MB POST). The close now lingers: the rest is read and dropped, then the answer is read."""
    length = 3 * 2**20
    head = (
        f"POST /api/v1/chargepoints HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", daphne.port), timeout=ANSWER_WAIT) as client:
        client.sendall(head)
        time.sleep(0.5)  # refused on its Content-Length: the 413 is written, the connection closing
        for _ in range(4):  # the body goes on, as any client's does (http.client's, then its read)
            client.sendall(b"x" * 65536)
            time.sleep(0.2)
        answer = client.recv(4096)
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:100]


@pytest.mark.parametrize(
    ("head", "status", "code"),
    [
        (b"GET /healthz?" + b"q" * 20_000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", b"414 ", "URITooLong"),
        (b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: " + b"c" * 20_000 + b"\r\n\r\n", b"431 ", None),
        (b"GET /ocpp/1.6/CP-1 HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Long: " + b"x" * 20_000 + b"\r\n\r\n", b"431 ", None),
    ],
)
def test_a_line_over_16_kib_in_a_request_head_is_answered(daphne, head, status, code):
    """Twisted closed the connection without a word (a charger's log: a reset)."""
    answer = _answer_to(daphne.port, head, b"")
    assert answer.startswith(b"HTTP/1.1 " + status), answer[:100]
    body = _answer_to(daphne.port, head, b"").partition(b"\r\n\r\n")[2]
    assert json.loads(body)["error"] == (code or "RequestHeaderFieldsTooLarge")
