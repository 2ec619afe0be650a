"""Redact the secrets that commands and message log frames recorded before round 46 still hold."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from commands.services import recorded_secrets_redact
from configuration.services import stored_passwords_redact
from webhooks.services import webhook_errors_redact, webhook_history_redact


class Command(BaseCommand):
    help = (
        "Replace by [redacted] the secrets that rows written before round 46 keep in commands' recorded "
        "requests and the OCPP message log (signed firmware links' and upload links' tokens, location "
        "passwords, chargers' passwords, also in the configuration store), and webhook URLs' secrets in "
        "the admin's history of subscriptions and in webhook attempts' and deliveries' errors. Idempotent; "
        "runs in batches beside a live gateway."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--batch-size", type=int, default=2000, help="Rows read and written per transaction (default 2000)."
        )

    def handle(self, *args: Any, batch_size: int, **options: Any) -> None:
        if batch_size < 1:
            raise CommandError("--batch-size must be 1 or more.")
        done = recorded_secrets_redact(batch_size=batch_size)
        stored = stored_passwords_redact()
        history = webhook_history_redact()
        errors = webhook_errors_redact(batch_size=batch_size)
        self.stdout.write(
            f"Redacted {done.commands} commands, {done.messages} message log frames, "
            f"{stored} stored configuration values, {history} webhook history entries and {errors} webhook errors."
        )
