from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from kernel.api_keys import api_key_find, api_key_revoke
from kernel.models import ApiKey


class Command(BaseCommand):
    help = "Revoke an API key, named by its id or the start of its prefix (see list_api_keys)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("id_or_prefix")

    def handle(self, *args: Any, id_or_prefix: str, **options: Any) -> None:
        try:
            api_key = api_key_find(id_or_prefix=id_or_prefix)
        except ApiKey.DoesNotExist as error:
            raise CommandError(str(error) or f"No API key {id_or_prefix!r}.") from None
        if api_key.revoked_at:
            self.stdout.write(f"API key #{api_key.pk} '{api_key.name}' was already revoked.")
            return
        api_key_revoke(api_key=api_key)
        self.stdout.write(f"Revoked API key #{api_key.pk} '{api_key.name}' ({api_key.prefix}…).")
