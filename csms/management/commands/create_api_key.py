from django.core.management.base import BaseCommand, CommandParser

from csms.api_keys import api_key_create


class Command(BaseCommand):
    help = "Create an API key. The key is printed once, as the last line, and stored only hashed."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="Who or what the key is for, e.g. 'billing-integration'.")

    def handle(self, *args: object, name: str, **options: object) -> None:
        record, key = api_key_create(name=name)
        self.stdout.write(f"Created API key #{record.pk} '{record.name}'. Store it now; it is not shown again.")
        self.stdout.write(key)
