"""What the API serializers of every app share: numbers as JSON numbers, and query-string filters."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from kernel.api_errors import ApiError
from kernel.money import round_money
from kernel.query_params import unknown_query_parameters_refused


def wh_number(value: Decimal | None) -> int | float | None:
    """Energy for JSON: an integer when whole (``10000``), else a float (``10000.5``)."""
    if value is None:
        return None
    return int(value) if value == value.to_integral_value() else float(value)


# --- Numbers --------------------------------------------------------------------------------


@extend_schema_field(OpenApiTypes.NUMBER)
class DecimalNumberField(serializers.DecimalField):
    """A decimal as a JSON number: 10000 when whole, 10000.5 otherwise (never "10000.000")."""

    def __init__(self, *, max_digits: int, decimal_places: int, **kwargs: Any) -> None:
        super().__init__(max_digits=max_digits, decimal_places=decimal_places, coerce_to_string=False, **kwargs)

    def to_representation(self, value: Decimal) -> int | float | None:  # type: ignore[override]  # a number, not a string
        return wh_number(Decimal(value))


class WattHoursField(DecimalNumberField):
    """Energy in Wh, as stored on transactions and billing records."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(max_digits=20, decimal_places=3, **kwargs)


_FIRST_YEAR = 1000  # RFC 3339 writes four-digit years


class UnknownFieldsRefused(serializers.Serializer):
    """A write serializer whose body may hold only its fields: one it does not have is a 400 naming
    it ("Unknown field."), where DRF drops it silently (a misspelt ``price_per_kWh`` made a free
    tariff). Read-only fields sent back (a PUT of what a GET returned) are still ignored. A number
    where a string belongs is a 400 naming the field ("Must be a string.", as the command bodies
    say), where DRF took its text (``{"charge_point_id": 1e308}`` registered a charger
    ``1e+308``). A time before the year 1000 is a 400 too: the API writes its times with four-digit
    years from 1000."""

    # Fields a subclass refuses with a message of its own (why, and what to do instead) rather than
    # "Unknown field.".
    refused_fields: ClassVar[dict[str, str]] = {}

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, Mapping):
            unknown = sorted(str(name) for name in data if name not in self.fields)
            refused = {name: [self.refused_fields.get(name, "Unknown field.")] for name in unknown}
            refused |= {name: ["Must be a string."] for name in self._numbers_for_strings(data)}
            refused |= {name: ["Given more than once in the same object."] for name in self._form_repeats(data)}
            if refused:
                raise serializers.ValidationError(refused)
        validated = super().to_internal_value(data)
        too_early = sorted(
            name for name, value in validated.items() if isinstance(value, datetime) and value.year < _FIRST_YEAR
        )
        if too_early:
            raise serializers.ValidationError(
                {
                    name: ["A year before 1000 is not taken (the API writes times with four-digit years from 1000)."]
                    for name in too_early
                }
            )
        return validated

    def _form_repeats(self, data: Mapping[Any, Any]) -> list[str]:
        """The fields of one value a form (a firmware upload's multipart body) gives more than once:
        its last part alone was read (two ``file`` parts stored the second, the first dropped), where
        a name given twice in a JSON object is refused (``kernel.parsers``)."""
        if not hasattr(data, "getlist"):
            return []
        return sorted(
            str(name)
            for name in data
            if name in self.fields
            and not isinstance(self.fields[name], serializers.ListField | serializers.MultipleChoiceField)
            and len(data.getlist(name)) > 1
        )

    def _numbers_for_strings(self, data: Mapping[Any, Any]) -> list[str]:
        """The writable string fields ``data`` gives a number with a fraction or an exponent: its text
        is not what was sent (``1e308`` read ``1e+308``). An integer's text is exact (``1001`` is
        ``"1001"``, a charger named by its serial number): taken, as before (bool is refused by DRF itself)."""
        return sorted(
            str(name)
            for name, value in data.items()
            if isinstance(value, float | Decimal)
            and isinstance(field := self.fields.get(name), serializers.CharField)
            and not field.read_only
        )


def no_body_fields(data: Any) -> None:
    """A request body (``request.data``) for an action that takes none (a webhook's
    ``rotate-secret``, a campaign's ``pause``, a charger's configuration ``refresh``): empty, ``{}``
    or ``null``; a field is a 400 naming it ("Unknown field."), as for any body, where it was
    dropped (``{"secret": "mine"}`` rotated to a generated secret); any other JSON value a 400."""
    if isinstance(data, Mapping):
        if data:
            raise serializers.ValidationError({str(name): ["Unknown field."] for name in data})
    elif data is not None:
        raise serializers.ValidationError({"non_field_errors": ["This action takes no body (or an empty object)."]})


class MoneyTotalField(serializers.DecimalField):
    """A billing record's ``total`` with the decimals of its ``currency`` (``"618"`` JPY, ``"4.00"``
    EUR), as its line items' amounts are: read from the whole record."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(max_digits=13, decimal_places=3, source="*", read_only=True, **kwargs)

    def to_representation(self, value: Any) -> str:
        return str(round_money(value.total, value.currency or ""))


# --- Query parameters -----------------------------------------------------------------------


# A time's offset whose "+" a query string read as a space (``10:00:00+02:00`` sent unencoded).
_PLUS_READ_AS_SPACE = re.compile(r"[0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]+)?)? [0-9]{2}(?::?[0-9]{2})?$")
_PLUS_AS_2B = (
    "A '+' in a query string reads as a space: send the offset's '+' as %2B"
    " (2026-05-01T10:00:00%2B02:00), or the time in UTC with Z."
)


class QueryParamsSerializer(serializers.Serializer):
    """Filters of a list, read from the query string; a bad one is a 400 naming the parameter. A
    filter given empty is given: an empty text matches it exactly, an empty choice or time is a 400."""

    @classmethod
    def parse(cls, query_params: Any) -> dict[str, Any]:
        """The filters; a parameter that is none of them (nor a page's) is a 400 naming it."""
        unknown_query_parameters_refused(query_params, cls.names())
        # A plain dict, not the QueryDict: DRF reads a form's empty value of an optional field as no
        # value, so ``?charge_point_id=`` (an unset variable) or ``?status=`` answered the whole list.
        serializer = cls(data={name: query_params.get(name) for name in query_params})
        if not serializer.is_valid():
            errors = serializer.errors.items()
            details = {name: cls._problems(serializer, query_params, name, said) for name, said in errors}
            raise ApiError(400, "ValidationError", "The query parameters are invalid.", details=details)
        return serializer.validated_data

    @staticmethod
    def _problems(serializer: serializers.Serializer, query_params: Any, name: str, said: Any) -> Any:
        """What is wrong with the parameter ``name``: DRF's ``said``, but for a time whose offset's
        ``+`` was sent unencoded (read as a space), how to send it: DRF's asked for the ``+HH:MM``
        the client had written."""
        field = serializer.fields.get(name)
        if isinstance(field, serializers.DateTimeField) and _PLUS_READ_AS_SPACE.search(str(query_params.get(name))):
            return [_PLUS_AS_2B]
        return said

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The filters' names: a list view's ``query_filters``."""
        return tuple(cls().fields)
