"""The message log's ``unique_id`` index as a hash index (issue 15, round 22): every frame logged
(a COPY of the batch's frames) inserts one entry in it, and a btree's insert compares random UUID
texts with the database's collation (``C.UTF-8``: ``strcoll``), about 4.8 µs of PostgreSQL's CPU a
frame; a hash index hashes the text once. Its queries are ``=`` and ``IN`` only (the admin's search
by an exact unique id, the pairing of a CALL with its answer: ``ocpp_message_pair``,
``ocpp_call_answers``), which a hash index serves (index and bitmap scans); nothing sorts, ranges
over or prefix-matches the log by ``unique_id``, and it is not unique.

Built ``CONCURRENTLY`` beside the btree, which is then dropped (``kernel.online_ddl``): the log stays
writable and indexed throughout. SQLite (development) keeps its plain index.
"""

from django.contrib.postgres.indexes import HashIndex
from django.db import migrations

from kernel import online_ddl

_LOG = "chargepoints_ocppmessage"


class Migration(migrations.Migration):
    atomic = False  # CREATE/DROP INDEX CONCURRENTLY run outside a transaction

    dependencies = [
        ("chargepoints", "0011_connector_fillfactor"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveIndex(model_name="ocppmessage", name="ocpp_message_unique_id"),
                migrations.AddIndex(
                    model_name="ocppmessage",
                    index=HashIndex(fields=["unique_id"], name="ocpp_message_unique_id"),
                ),
            ],
            database_operations=[
                online_ddl.postgresql_only_index_rebuilt(
                    "ocpp_message_unique_id", _LOG, 'USING hash ("unique_id")', '("unique_id")'
                ),
            ],
        ),
    ]
