"""The cache of a broker-less instance: Django's file-based cache, culled on a clock.

Without ``REDIS_URL`` (``manage.py up`` on embedded defaults) the controllers' pending marks,
key locks and scheduled looks live in Django's ``FileBasedCache``. Its every ``set`` and ``add``
lists the whole cache directory to decide whether to cull, whatever ``MAX_ENTRIES`` says: with
1,000 nodes' lifecycle checks that listing was most of the Celery worker's time. Here the
directory is looked at no more than once per ``CULL_INTERVAL_SECONDS`` per process, and that
look also deletes expired entries (marks that nobody read again would otherwise stay on disk
for ever: the stock cache drops an expired file only when it is read or culled at random).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from django.core.cache.backends.filebased import FileBasedCache

CULL_INTERVAL_SECONDS = 60.0


class FileCache(FileBasedCache):
    """``FileBasedCache`` whose culling runs on a clock (module docstring).

    (It builds on the stock cache's private helpers, which django-stubs does not declare.)
    """

    def __init__(self, dir: str, params: dict[str, Any]) -> None:
        super().__init__(dir, params)
        self._cull_lock = threading.Lock()
        self._next_cull = 0.0

    def _cull(self) -> None:
        now = time.monotonic()
        if now < self._next_cull or not self._cull_lock.acquire(blocking=False):
            return
        try:
            self._next_cull = now + CULL_INTERVAL_SECONDS
            self.delete_expired()
            super()._cull()  # type: ignore[misc]
        finally:
            self._cull_lock.release()

    def delete_expired(self) -> int:
        """Delete every expired entry; returns how many went."""
        deleted = 0
        for path in self._list_cache_files():  # type: ignore[attr-defined]
            try:
                with open(path, "rb") as f:
                    # _is_expired closes and deletes the file when it has expired.
                    deleted += int(self._is_expired(f))  # type: ignore[attr-defined]
            except FileNotFoundError:
                continue  # another process got there first
        return deleted
