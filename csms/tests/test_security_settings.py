"""Security settings: safe defaults, and HTTPS-only cookies behind the TLS proxy."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRINT = (
    "import json, django; django.setup(); from django.conf import settings as s;"
    "print(json.dumps({name: getattr(s, name, None) for name in ("
    "'DEBUG', 'SESSION_COOKIE_SECURE', 'CSRF_COOKIE_SECURE', 'SECURE_PROXY_SSL_HEADER', 'SECURE_HSTS_SECONDS',"
    " 'CSMS_AUTO_REGISTER', 'CSMS_REQUIRE_CHARGER_PASSWORD')}))"
)


def security_settings(tmp_path: Path, **env: str) -> dict:
    environment = {**os.environ, "DJANGO_SETTINGS_MODULE": "csms.settings", "CSMS_VAR_DIR": str(tmp_path)}
    for name in ("DATABASE_URL", "REDIS_URL", "DJANGO_DEBUG", "CSMS_BEHIND_TLS", "CSMS_AUTO_REGISTER"):
        environment.pop(name, None)
    environment.update(env)
    done = subprocess.run(
        [sys.executable, "-c", PRINT], cwd=ROOT, env=environment, capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_defaults_are_the_safe_ones(tmp_path):
    assert security_settings(tmp_path) == {
        "DEBUG": False,
        "SESSION_COOKIE_SECURE": False,
        "CSRF_COOKIE_SECURE": False,
        "SECURE_PROXY_SSL_HEADER": None,
        "SECURE_HSTS_SECONDS": 0,
        "CSMS_AUTO_REGISTER": False,
        "CSMS_REQUIRE_CHARGER_PASSWORD": False,
    }


def test_behind_tls_cookies_are_https_only_and_the_proxy_header_is_trusted(tmp_path):
    configured = security_settings(tmp_path, CSMS_BEHIND_TLS="1")
    assert configured["SESSION_COOKIE_SECURE"] and configured["CSRF_COOKIE_SECURE"]
    assert configured["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert configured["SECURE_HSTS_SECONDS"] > 0
