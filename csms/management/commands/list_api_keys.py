from typing import Any

from django.core.management.base import BaseCommand

from kernel.api_keys import api_key_list

_NEVER = "-"


def _when(moment: Any) -> str:
    return f"{moment:%Y-%m-%dT%H:%M:%SZ}" if moment else _NEVER


class Command(BaseCommand):
    help = "List API keys: id, prefix, name, scope, state, created, expires, last used (keys are stored hashed)."

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write("id\tprefix\tname\tscope\tstate\tcreated\texpires\tlast_used")
        for api_key in api_key_list():
            state = "revoked" if api_key.revoked_at else ("active" if api_key.is_active else "expired")
            fields = [
                api_key.pk,
                api_key.prefix,
                api_key.name,
                api_key.scope,
                state,
                _when(api_key.created_at),
                _when(api_key.expires_at),
                _when(api_key.last_used_at),
            ]
            self.stdout.write("\t".join(str(field) for field in fields))
