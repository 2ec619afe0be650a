"""The page a locked-out admin sign-in gets (django-axes' ``AXES_LOCKOUT_CALLABLE``)."""

from __future__ import annotations

import math

from axes.helpers import get_client_username, get_cool_off
from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def admin_lockout_response(
    request: HttpRequest, original_response: HttpResponse | None, credentials: dict[str, str] | None
) -> HttpResponse:
    """429 with an admin page saying who is locked out, why, and when to try again."""
    cool_off = get_cool_off(request)
    context = {
        **admin.site.each_context(request),
        "title": "Sign-in locked",
        "username": get_client_username(request, credentials) or "",
        "cooloff_minutes": math.ceil(cool_off.total_seconds() / 60) if cool_off else None,
    }
    return render(request, "admin/login_locked_out.html", context, status=429)
