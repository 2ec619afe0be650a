"""The embedded Celery broker of ``make run`` (no Redis): kombu's filesystem transport, with each
message written under a name no consumer reads and then renamed into the queue.

kombu's own ``_put`` creates the message file and writes it afterwards; another process polling the
folder can take the file in between and read it empty, and its worker dies of the JSONDecodeError
(``Unrecoverable error``), which stops ``make run``. A rename within one folder is atomic, so a
consumer sees a whole message or none.
"""

from __future__ import annotations

import os
import uuid
from time import monotonic
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps


class Channel(filesystem.Channel):
    def _put(self, queue: str, payload: Any, **kwargs: Any) -> None:  # type: ignore[override]  # kombu's own base says message
        """Put ``payload`` onto ``queue``: written as ``.<name>.tmp`` (never a queue's ``*.<queue>.msg``),
        then renamed; the name keeps kombu's order (milliseconds first)."""
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = os.path.join(self.data_folder_out, f".{name}.tmp")
        try:
            with open(partial, "wb") as message:
                message.write(str_to_bytes(dumps(payload)))
            os.replace(partial, final)
        except OSError as error:
            raise ChannelError(f"Cannot add file {final!r} to directory") from error


class FilesystemTransport(filesystem.Transport):
    Channel = Channel

    @property
    def default_connection_params(self) -> dict[str, Any]:
        """No host: the broker is a folder. kombu's default names ``localhost``, and every
        connection and clone logged "No hostname was supplied" (each ``make run`` worker and beat)."""
        return {"port": self.default_port, "hostname": None}
