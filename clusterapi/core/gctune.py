"""Garbage-collector settings for Berth's long-running processes.

CPython's cycle collector runs a young-generation pass every 700 allocations and, as the heap
grows, full passes that walk every live container object. The API server and the Celery
worker keep large, long-lived heaps (the bundled schemas, the scheduler's cache of every
node and pod, decoded objects in flight) and allocate quickly, so with the defaults a large
part of their time went to walking objects that would never be garbage: on the scheduler
benchmark (1,000 nodes, 10,000 pods) binding went from about 870 to 1,180 pods a second and
a cold cache sync from 1.3 to 0.55 s with the settings below.

``tune()`` is called once a process has finished starting (``manage.py up`` before it
serves; the worker on ``worker_ready``):

* ``gc.freeze()`` moves everything allocated so far (modules, schemas, settings) to a
  permanent generation that collections no longer walk (both processes);
* in the worker, the young generation is collected every 50,000 allocations
  (``BERTH_GC_THRESHOLD``) and older ones after 20 young passes each. Berth's own objects are
  JSON trees without cycles, freed by reference counting the moment they are dropped; the
  collector only finds the rare cycle (a traceback, a closure), which waits a little longer.
  The API server keeps the interpreter's thresholds: there the larger generations made the
  occasional collection a pause of about 100 ms, which every request caught behind it
  waited out (GET p99 21 -> 110 ms in ``bench/api.py``), while it gained a few percent.
"""

from __future__ import annotations

import gc
import os

DEFAULT_THRESHOLD = 50_000
OLDER_THRESHOLD = 20


def tune(young: int | None = None) -> tuple[int, int, int]:
    """Freeze what exists and, with ``young`` (default: ``BERTH_GC_THRESHOLD`` or 50,000; 0
    keeps the interpreter's), raise the collection thresholds; returns the thresholds."""
    if young is None:
        young = int(os.environ.get("BERTH_GC_THRESHOLD", DEFAULT_THRESHOLD))
    gc.collect()
    gc.freeze()
    if young > 0:
        gc.set_threshold(young, OLDER_THRESHOLD, OLDER_THRESHOLD)
    return gc.get_threshold()
