from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from ocpp_gateway.conformance import conformance_markdown


class Command(BaseCommand):
    help = "Print the OCPP conformance matrix (docs/conformance.md) as Markdown."

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write(conformance_markdown(settings.BASE_DIR), ending="")
