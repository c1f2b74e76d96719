"""The broker that needs no server: kombu's filesystem transport, made safe to share.

``manage.py up`` without ``REDIS_URL`` passes Celery messages as files in the data directory.
kombu's filesystem transport creates a message file and then writes it, while a consumer in
another process may already move and read it, and fail on an empty body (a JSONDecodeError
that stops the worker). Here a message is written in full to a staging directory beside the
queue and then renamed into it, which is atomic on one filesystem: a consumer sees whole
messages or none. Registered as the ``berthfs://`` transport.
"""

from __future__ import annotations

import os
import uuid
from time import monotonic
from typing import Any

from kombu.transport import TRANSPORT_ALIASES, filesystem
from kombu.utils.json import dumps


class Channel(filesystem.Channel):
    """A filesystem channel whose writes are atomic (see the module docstring)."""

    def _put(self, queue: Any, payload: Any, **kwargs: Any) -> None:  # type: ignore[override]
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        staging = self.transport_options.get("staging_folder") or os.path.join(
            self.data_folder_out, os.pardir, "staging"
        )
        os.makedirs(staging, exist_ok=True)
        temporary = os.path.join(staging, name)
        with open(temporary, "wb") as handle:
            handle.write(dumps(payload).encode())
        os.replace(temporary, os.path.join(self.data_folder_out, name))


class Transport(filesystem.Transport):
    Channel = Channel
    driver_type = "berthfs"
    driver_name = "berthfs"

    @property
    def default_connection_params(self) -> dict[str, object]:
        # Folders, not a host: without this kombu warns on every connection that no
        # hostname was supplied and it falls back to "localhost".
        return {}


TRANSPORT_ALIASES.setdefault("berthfs", "clusterapi.broker:Transport")
