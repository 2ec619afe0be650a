"""Every event type has one builder (an app's ``events.py``) and a README example with its fields."""

from __future__ import annotations

import ast
import inspect
import json
import re
from importlib import import_module
from typing import Any

from django.apps import apps
from django.conf import settings
from django.utils.module_loading import module_has_submodule

from webhooks.models import EventType

_JSON_BLOCK = re.compile(r"```json\n(.*?)```", re.DOTALL)


def _builders() -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = {}
    for app in apps.get_app_configs():
        if module_has_submodule(app.module, "events"):
            for event_type, builder in import_module(f"{app.name}.events").EVENT_BUILDERS.items():
                found.setdefault(event_type, []).append(builder)
    return found


def _readme_examples() -> dict[str, dict[str, Any]]:
    readme = (settings.BASE_DIR / "README.md").read_text()
    section = readme[readme.index("### Webhooks") :]
    section = section[: section.index("\n## ")] if "\n## " in section else section
    examples = {}
    for block in _JSON_BLOCK.findall(section):
        for line in block.splitlines():
            event = json.loads(line)
            assert event["type"] not in examples, f"two README examples of {event['type']}"
            examples[event["type"]] = event["data"]
    return examples


def _keys_returned(builder: Any) -> set[str]:
    """The keys of the dict literal ``builder`` returns."""
    tree = ast.parse(inspect.getsource(builder).lstrip())
    returns = [node.value for node in ast.walk(tree) if isinstance(node, ast.Return)]
    assert len(returns) == 1 and isinstance(returns[0], ast.Dict), f"{builder.__qualname__} returns one dict literal"
    return {str(key.value) for key in returns[0].keys if isinstance(key, ast.Constant)}


def test_every_event_type_has_exactly_one_builder():
    builders = _builders()
    assert set(builders) == set(EventType.values)
    assert all(len(found) == 1 for found in builders.values()), {t: b for t, b in builders.items() if len(b) > 1}


def test_every_event_type_has_a_readme_example_with_the_fields_its_builder_sends():
    examples = _readme_examples()
    assert set(examples) == set(EventType.values)
    for event_type, [builder] in _builders().items():
        assert set(examples[event_type]) == _keys_returned(builder), event_type
