"""The embedded broker of ``make run`` (kombu's filesystem transport): a consumer never sees a
message file before it is whole."""

from __future__ import annotations

import os

from kombu import Connection

from csms import broker


def connection(folder) -> Connection:
    options = {"data_folder_in": str(folder), "data_folder_out": str(folder), "control_folder": str(folder / "c")}
    return Connection("filesystem://", transport="csms.broker:FilesystemTransport", transport_options=options)


def test_a_message_is_in_the_queue_only_once_written(tmp_path, monkeypatch):
    visible_while_writing = []
    encode = broker.str_to_bytes

    def encode_and_look(text: str) -> bytes:  # runs while the message is being written
        visible_while_writing.extend(name for name in os.listdir(tmp_path) if name.endswith(".tasks.msg"))
        return encode(text)

    monkeypatch.setattr(broker, "str_to_bytes", encode_and_look)
    with connection(tmp_path) as conn:
        queue = conn.SimpleQueue("tasks")
        queue.put({"task": "webhooks.tasks.deliver_due_webhooks"})
        message = queue.get(timeout=5)
        message.ack()
        queue.close()
    assert visible_while_writing == []
    assert message.payload == {"task": "webhooks.tasks.deliver_due_webhooks"}
    assert not [name for name in os.listdir(tmp_path) if name.endswith(".tmp")]


def test_a_connection_does_not_warn_of_a_missing_hostname(tmp_path, caplog):
    with connection(tmp_path) as conn:
        conn.clone().connect()
    assert not [record for record in caplog.records if "hostname" in record.getMessage()]
