"""A 2.0.1 session's ``seq_nos`` in their compact form (issue 15): every event wrote the whole
list of the seqNos seen again, so a long session's events grew with it. The list becomes ascending,
a run of consecutive seqNos one ``[first, last]`` entry (``charging.services.session_rows.seq_nos_with``):
a session counting up from 0 is ``[[0, last]]``. The conversion is written here, not imported, so
that it stays what this migration did; reversed, the runs are spelled out again.
"""

from typing import Any

from django.db import migrations, models

_CHUNK = 2000  # sessions read and written at a time


def _compact(seq_nos: list[Any]) -> list[Any]:
    """Any list of seqNos and runs (the old list, in arrival order) in the compact form."""
    runs = sorted((entry, entry) if isinstance(entry, int) else (entry[0], entry[1]) for entry in seq_nos)
    merged: list[list[int]] = []
    for first, last in runs:
        if merged and first <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], last)
        else:
            merged.append([first, last])
    return [first if first == last else [first, last] for first, last in merged]


def _spelled_out(seq_nos: list[Any]) -> list[int]:
    return [n for entry in seq_nos for n in ([entry] if isinstance(entry, int) else range(entry[0], entry[1] + 1))]


def _converted(apps: Any, schema_editor: Any, convert: Any) -> None:
    Transaction = apps.get_model("charging", "Transaction")
    sessions = Transaction.objects.using(schema_editor.connection.alias).filter(ocpp_version="2.0.1")
    changed = []
    for session in sessions.only("id", "seq_nos").iterator(chunk_size=_CHUNK):
        seq_nos = convert(session.seq_nos or [])
        if seq_nos != session.seq_nos:
            session.seq_nos = seq_nos
            changed.append(session)
        if len(changed) >= _CHUNK:
            Transaction.objects.using(schema_editor.connection.alias).bulk_update(changed, ["seq_nos"])
            changed = []
    if changed:
        Transaction.objects.using(schema_editor.connection.alias).bulk_update(changed, ["seq_nos"])


def _to_compact(apps: Any, schema_editor: Any) -> None:
    _converted(apps, schema_editor, _compact)


def _to_list(apps: Any, schema_editor: Any) -> None:
    _converted(apps, schema_editor, _spelled_out)


class Migration(migrations.Migration):
    dependencies = [
        ("charging", "0003_session_and_meter_sample_write_cost"),
    ]

    operations = [
        migrations.AlterField(
            model_name="transaction",
            name="seq_nos",
            field=models.JSONField(
                blank=True,
                default=list,
                help_text="2.0.1 seqNo values processed, ascending: a seqNo alone, or [first, last] for a run of them.",
            ),
        ),
        migrations.RunPython(_to_compact, _to_list),
    ]
