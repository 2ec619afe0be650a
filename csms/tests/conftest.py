"""Helpers of the tests that start the product as a user does (``make run`` from a terminal)."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path


def as_from_a_terminal() -> None:
    """A new session (its own "terminal"), with Ctrl-C's SIGINT at its default as in a shell."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    os.setsid()


def processes_started_with(var_dir: Path) -> list[int]:
    """Every live process whose environment names ``var_dir`` (make, the script, daphne, Celery)."""
    marker = f"CSMS_VAR_DIR={var_dir}".encode()
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        with contextlib.suppress(OSError):
            if marker in environ.read_bytes().split(b"\0") and b"Z" not in _state(environ.parent):
                found.append(int(environ.parent.name))
    return found


def _state(process: Path) -> bytes:
    return process.joinpath("stat").read_bytes().rsplit(b")", 1)[1].split()[0]
