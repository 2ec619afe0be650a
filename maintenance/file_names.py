"""File names from chargers and operators, cut to the columns that keep them."""

from __future__ import annotations

from pathlib import PurePosixPath

# What the storage may add to a name already taken (Django's ``get_available_name``: ``_`` and 7 characters).
TAKEN_NAME_ROOM = 8


def file_name_cut(name: str, length: int) -> str:
    """``name`` in at most ``length`` characters: its stem cut, its extension kept when short.

    A charger names its upload (1.6 GetDiagnostics.conf ``fileName``, 2.0.1 GetLog.conf ``filename``,
    the upload's URL or form) and an operator a firmware image, at any length: the columns that keep
    a name, and a file's path in the storage, do not grow with it."""
    if len(name) <= length:
        return name
    suffix = PurePosixPath(name).suffix
    if not suffix or len(suffix) > length // 2:
        return name[:length]
    return name[: length - len(suffix)] + suffix
