from datetime import datetime, timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from kernel.api_keys import api_key_create
from kernel.models import ApiKey, ApiKeyScope


class Command(BaseCommand):
    help = "Create an API key. The key is printed once, as the last line, and stored only hashed."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="Who or what the key is for, e.g. 'billing-integration'.")
        parser.add_argument(
            "--read-only", action="store_true", help="May read everything, send no command and change nothing."
        )
        parser.add_argument("--expires-in-days", type=int, help="Refused after this many days.")

    def handle(self, *args: Any, name: str, read_only: bool, expires_in_days: int | None, **options: Any) -> None:
        # As the admin's form: a longer name ended in a DataError traceback on PostgreSQL (stored whole on
        # SQLite), a blank one made a key list_api_keys and the admin show without a name.
        longest = ApiKey._meta.get_field("name").max_length or 0
        if not name.strip() or len(name) > longest:
            raise CommandError(
                f"The name must be 1 to {longest} characters, not {len(name)}: who or what the key is for."
            )
        expires_at = _expiry(expires_in_days) if expires_in_days is not None else None
        scope = ApiKeyScope.READ_ONLY if read_only else ApiKeyScope.FULL
        record, key = api_key_create(name=name, scope=scope, expires_at=expires_at)
        expiry = f", expires {record.expires_at:%Y-%m-%dT%H:%M:%SZ}" if record.expires_at else ""
        self.stdout.write(
            f"Created API key #{record.pk} '{record.name}' ({record.get_scope_display().lower()}{expiry})."
            " Store it now; it is not shown again."
        )
        self.stdout.write(key)


def _expiry(days: int) -> datetime:
    """When a key made now for ``days`` days expires; a CommandError for a key that would be expired
    already (0 days or fewer) or one beyond the last date a time can hold."""
    if days < 1:
        raise CommandError(
            f"--expires-in-days must be 1 or more, not {days}: the key would be expired already."
            " Leave it out for a key that does not expire."
        )
    try:
        return timezone.now() + timedelta(days=days)
    except OverflowError:
        raise CommandError(f"--expires-in-days {days} is beyond the year 9999; leave it out instead.") from None
