"""kernel/schema_errors.py finds what jsonschema finds (the same errors, order, messages, paths,
and ``best_match``) in every OCPP request schema the gateway validates, reading in Python only the
array items the compiled schema rejects."""

from __future__ import annotations

import copy
import decimal
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft4Validator
from jsonschema.exceptions import ValidationError, best_match

from kernel import ocpp_package, schema_errors

T = "2026-12-01T10:00:00Z"
SAMPLES_201 = [
    {"value": 1, "measurand": "Energy.Active.Import.Register", "unitOfMeasure": {"unit": "Wh"}},
    {"value": 2},
]
PAYLOADS: dict[tuple[str, str], dict[str, Any]] = {
    ("1.6", "MeterValues"): {
        "connectorId": 1,
        "transactionId": 4,
        "meterValue": [{"timestamp": T, "sampledValue": [{"value": "1", "unit": "Wh"}, {"value": "2"}]}],
    },
    ("1.6", "StopTransaction"): {
        "transactionId": 1,
        "meterStop": 2,
        "timestamp": T,
        "reason": "Local",
        "transactionData": [{"timestamp": T, "sampledValue": [{"value": "1"}]}],
    },
    ("1.6", "StatusNotification"): {"connectorId": 1, "errorCode": "NoError", "status": "Available"},
    ("1.6", "BootNotification"): {"chargePointVendor": "V", "chargePointModel": "M"},
    ("2.0.1", "MeterValues"): {"evseId": 1, "meterValue": [{"timestamp": T, "sampledValue": SAMPLES_201}]},
    ("2.0.1", "TransactionEvent"): {
        "eventType": "Started",
        "timestamp": T,
        "triggerReason": "Authorized",
        "seqNo": 0,
        "transactionInfo": {"transactionId": "X"},
        "idToken": {"idToken": "A", "type": "ISO14443"},
        "meterValue": [{"timestamp": T, "sampledValue": [{"value": 1}]}],
    },
    ("2.0.1", "NotifyReport"): {
        "requestId": 1,
        "generatedAt": T,
        "seqNo": 0,
        "reportData": [
            {
                "component": {"name": "C", "evse": {"id": 1}},
                "variable": {"name": "V"},
                "variableAttribute": [{"value": "1", "type": "Actual"}],
            }
        ],
    },
}
scalars = st.sampled_from(
    [None, True, 0, 1, -1, 1.0, 1.5, 2**31, 2**70, "", "X", "1", "2.5", "x" * 70, "Wh", float("inf"), float("nan")]
)
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from("ab"), inner), max_leaves=6
)
NAMES = ["bogus", "value", "unit", "measurand", "context", "id", "type", "name", "timestamp", "evseId"]


def _paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else []
    return [path, *(found for key, item in items for found in _paths(item, (*path, key)))]


@st.composite
def payloads(draw: st.DrawFn) -> tuple[str, str, Any]:
    """A known payload with a few of its values replaced, dropped, added or repeated (arrays)."""
    (version, action), payload = draw(st.sampled_from(sorted(PAYLOADS.items())))
    payload = copy.deepcopy(payload)
    for _ in range(draw(st.integers(min_value=1, max_value=5))):
        *parents, key = draw(st.sampled_from([path for path in _paths(payload) if path] or [("bogus",)]))
        node = payload
        for parent in parents:
            node = node[parent]
        change = draw(st.sampled_from(["replace", "drop", "add", "repeat"]))
        target = node[key] if isinstance(node, list) or key in node else None
        if change == "drop" and isinstance(node, dict) and key in node:
            del node[key]
        elif change == "add" and isinstance(target, dict):
            target[draw(st.sampled_from(NAMES))] = draw(json_values)
        elif change == "repeat" and isinstance(target, list) and target:
            target.extend(copy.deepcopy(target[-1]) for _ in range(draw(st.integers(1, 30))))
        else:
            node[key] = draw(json_values)
    return version, action, payload


def _described(error: ValidationError | None) -> Any:
    if error is None:
        return None
    return (error.message, error.validator, repr(error.validator_value), list(error.path), list(error.schema_path))


def _jsonschema(version: str, action: str) -> Draft4Validator:
    validator = ocpp_package.request_validator(version, action)
    return getattr(validator, "original", validator)


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
def test_every_request_schema_is_modelled_once(version):
    for action in ocpp_package.request_actions(version):
        place = ocpp_package.request_place(version, action)
        assert place.schema is _jsonschema(version, action).schema
        assert ocpp_package.request_place(version, action) is place


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(payloads())
def test_the_errors_and_the_best_are_jsonschemas(case):
    version, action, payload = case
    validator = _jsonschema(version, action)
    place = ocpp_package.request_place(version, action)
    expected = list(validator.iter_errors(payload))
    found = list(schema_errors.errors(place, payload))
    assert [_described(error) for error in found] == [_described(error) for error in expected]
    assert [(error.instance, error.schema) for error in found] == [(error.instance, error.schema) for error in expected]
    assert _described(schema_errors.best_error(place, payload)) == _described(best_match(expected))
    as_decimals = json.loads(json.dumps(payload), parse_float=decimal.Decimal)  # as 1.6 refusals are described
    best = schema_errors.best_error(place, payload, described=ocpp_package.decimal_numbers)
    assert _described(best) == _described(best_match(validator.iter_errors(as_decimals)))


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(payloads())
def test_omissible_errors_are_left_out_after_their_first_or_all_along(case):
    version, action, payload = case
    place = ocpp_package.request_place(version, action)
    omissible = frozenset(group for group in place.groups if group[1] in ("enum", "maxLength"))
    expected = [_described(error) for error in _jsonschema(version, action).iter_errors(payload)]
    groups = [("/".join("*" if isinstance(part, int) else str(part) for part in e[3]), e[1]) for e in expected]
    firsts = {group: index for index, group in reversed(list(enumerate(groups)))}
    for first_kept in (True, False):
        found = [
            _described(e) for e in schema_errors.errors(place, payload, omissible=omissible, first_kept=first_kept)
        ]
        remaining = iter(expected)
        assert all(error in remaining for error in found), "in jsonschema's order, each once"
        needed = [
            error
            for index, (error, group) in enumerate(zip(expected, groups, strict=True))
            if group not in omissible or (first_kept and firsts[group] == index)
        ]
        assert all(error in found for error in needed)


def _counting_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The places Python reads a value's keywords at, as they are read."""
    read: list[str] = []
    original = schema_errors._keyword_errors

    def counted(place: schema_errors.Place, *args: Any) -> Any:
        read.append(place.path)
        return original(place, *args)

    monkeypatch.setattr(schema_errors, "_keyword_errors", counted)
    return read


def test_python_reads_one_of_thousands_of_items_with_the_same_kind_of_error(monkeypatch):
    place = ocpp_package.request_place("2.0.1", "MeterValues")
    samples = [{"value": n, "measurand": f"X{n}"} for n in range(4000)]
    payload = {"evseId": 1, "meterValue": [{"timestamp": T, "sampledValue": samples}]}
    read = _counting_reads(monkeypatch)
    omissible = frozenset({("meterValue/*/sampledValue/*/measurand", "enum")})
    [error] = schema_errors.errors(place, payload, omissible=omissible)
    assert (list(error.path), error.instance) == (["meterValue", 0, "sampledValue", 0, "measurand"], "X0")
    assert list(schema_errors.errors(place, payload, omissible=omissible, first_kept=False)) == []
    best = schema_errors.best_error(place, payload)
    assert (list(best.path), best.instance) == (["meterValue", 0, "sampledValue", 3999, "measurand"], "X3999")
    assert len(read) < 60, f"{len(read)} keyword reads"


def test_an_item_jsonschema_rs_cannot_check_is_read_in_python():
    place = ocpp_package.request_place("2.0.1", "MeterValues")
    samples = [{"value": 1, "measurand": "X\ud800"}, {"value": "1"}, {"value": 2}]
    payload = {"evseId": 1, "meterValue": [{"timestamp": T, "sampledValue": samples}]}
    expected = list(_jsonschema("2.0.1", "MeterValues").iter_errors(payload))
    assert [_described(e) for e in schema_errors.errors(place, payload)] == [_described(e) for e in expected]
    assert _described(schema_errors.best_error(place, payload)) == _described(best_match(expected))


@pytest.mark.parametrize("schema", [{"anyOf": [{}]}, {"additionalProperties": {}}, {"items": [{}]}, {"$ref": "x.json"}])
def test_a_schema_it_does_not_model_is_refused(schema):
    with pytest.raises(ValueError):
        schema_errors.place_of(schema)
