from __future__ import annotations

import getpass
import os
import sys
from typing import Any

from django.contrib.auth.models import User
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from csms.staff_groups import STAFF_GROUPS, staff_user_create

PASSWORD_VARIABLE = "CSMS_STAFF_PASSWORD"


class Command(BaseCommand):
    help = (
        "Create an admin login in the 'support' (sees everything, changes nothing) or 'operator' "
        f"(also sends commands) group. The password comes from --password, else ${PASSWORD_VARIABLE}, "
        "else a prompt."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--group", required=True, choices=STAFF_GROUPS)
        parser.add_argument("--email", default="")
        parser.add_argument("--password", help=f"Visible in the process list; prefer ${PASSWORD_VARIABLE}.")

    def handle(self, *args: Any, username: str, group: str, email: str, password: str | None, **options: Any) -> None:
        if User.objects.filter(username=username).exists():
            raise CommandError(f"User {username!r} already exists.")
        password = password or os.environ.get(PASSWORD_VARIABLE) or self._prompt()
        try:
            validate_password(password, User(username=username, email=email))
        except ValidationError as error:
            raise CommandError(" ".join(error.messages)) from None
        user = staff_user_create(username=username, password=password, group=group, email=email)
        self.stdout.write(f"Created staff user {user.username!r} in the {group} group.")

    def _prompt(self) -> str:
        if not sys.stdin.isatty():
            raise CommandError(f"No password: pass --password or set {PASSWORD_VARIABLE}.")
        password = getpass.getpass("Password: ")
        if password != getpass.getpass("Password (again): "):
            raise CommandError("The passwords differ.")
        return password
