"""The README's way of verifying a delivery's signature, run as an integrator would copy it."""

from __future__ import annotations

import re
import time
from collections.abc import Callable

from conftest import ROOT
from webhooks.signing import signature_header

SECRET = "whsec_readme"
BODY = b'{"id": "e1", "type": "charge_point.online", "data": {}}'


def _readme_verify() -> Callable[..., bool]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    found = re.search(r"```python\n(import hashlib, hmac.*?def verify\(.*?)```", readme, re.S)
    assert found is not None, "the README's verify()"
    namespace: dict[str, object] = {}
    exec(found.group(1), namespace)  # the README's own example
    return namespace["verify"]  # type: ignore[return-value]


def test_the_readmes_verify_takes_a_fresh_delivery_and_refuses_a_replayed_one():
    """The header carries its signing time so that a receiver can refuse an old delivery sent
    again; the README's verify() checked the signature only, and took a capture at any age."""
    verify = _readme_verify()
    now = int(time.time())
    assert verify(SECRET, signature_header(secret=SECRET, body=BODY.decode(), timestamp=now), BODY)
    replayed = signature_header(secret=SECRET, body=BODY.decode(), timestamp=now - 3600)
    assert not verify(SECRET, replayed, BODY)
    assert not verify("whsec_other", signature_header(secret=SECRET, body=BODY.decode(), timestamp=now), BODY)
