"""The README's reverse proxy for nginx: what daphne's --proxy-headers trusts must come from the
proxy, not from the client."""

from __future__ import annotations

import re

from conftest import ROOT


def _nginx_block() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    found = re.search(r"```nginx\n(.*?)```", readme, re.S)
    assert found is not None, "the README's nginx example"
    return found.group(1)


def test_the_nginx_example_replaces_the_clients_x_forwarded_for():
    """daphne --proxy-headers (the Docker image's) takes the first X-Forwarded-For address as the
    client's; nginx passes a client's own header on unless the location sets it. Without the line
    a client chose the address the admin sign-in lockout (django-axes, per username and address),
    the charger password throttles and the handshake limit counted it under: unlimited guesses."""
    settings = re.findall(r"proxy_set_header\s+X-Forwarded-For\s+(\S+);", _nginx_block(), re.I)
    assert settings == ["$remote_addr"]


def test_the_proxies_keep_the_metrics_from_the_internet():
    """``/metrics`` answers anyone without a key (Prometheus scrapes it inside the network): the
    Caddyfile answered it 404, the README's nginx example forwarded it with everything else."""
    assert re.search(r"^\s*respond /metrics 404$", (ROOT / "deploy" / "Caddyfile").read_text(), re.M)
    assert re.search(r"location = /metrics \{ return 404; \}", _nginx_block())
