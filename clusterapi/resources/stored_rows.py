"""Table rows computed when an object is written, so ``kubectl get`` lists need no decoding.

A Table answer (``kubectl get``'s default output) holds one row per object: its printed cells
and its metadata. Computing them means decoding every stored object and running the kind's
printers, which for 10,000 pods took well over a second. Yet almost nothing in a row changes
between writes: only the cells that read the clock (ages, "3 (5m ago)" restarts, a running
job's duration).

So the store keeps, beside each object's JSON, the row as it is served for the default
``includeObject=Metadata``, with every clock-dependent cell left as a marker
``{"$since": <epoch seconds>, "f": "<template>"}`` (``printers.Ago`` says where). Serving a
list joins the stored rows and replaces the markers in one pass (``render``). A marker cannot
be confused with data: cells are strings and numbers, never objects, and inside a JSON string
``{"`` cannot occur unescaped.

Each stored row starts with ``VERSION``, a digest of the printers' source: rows written by an
older printer are recomputed from the object when served (``row_for``), never shown stale.
StorageClass rows depend on the other classes (which one is the default), so it is not stored.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from clusterapi.resources import printers

Obj = dict[str, Any]

# Kinds whose cells depend on other objects than the row's own.
_UNSTORED_KINDS = frozenset({"StorageClass"})

VERSION = hashlib.sha256(
    Path(printers.__file__).read_bytes() + Path(__file__).read_bytes()
).hexdigest()[:16]

_MARKER = re.compile(rb'\{"\$since":(-?[0-9.eE+-]+),"f":"((?:[^"\\]|\\.)*)"\}')


def stored(kind: str) -> bool:
    """Whether rows of this kind are kept with the objects."""
    return kind not in _UNSTORED_KINDS


def _cell(value: Any) -> Any:
    if isinstance(value, printers.Ago):
        return {"$since": value.moment.timestamp(), "f": value.template}
    return value


def row_json(kind: str, obj: Obj) -> bytes:
    """The served row (``includeObject=Metadata``) with clock-dependent cells as markers."""
    with printers.deferred_ages():
        cells = printers.table_row_cells(kind, obj)
    return orjson.dumps(
        {
            "cells": [_cell(c) for c in cells],
            "object": {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": obj.get("metadata", {}),
            },
        }
    )


def for_storage(kind: str, obj: Obj) -> str:
    """What the store keeps beside the object: ``VERSION`` and the row, or "" if unstored."""
    if not stored(kind):
        return ""
    return VERSION + row_json(kind, obj).decode()


def row_for(kind: str, kept: str, data: str) -> bytes:
    """The row of a stored object, from what was kept if current, else from the object."""
    if kept.startswith(VERSION):
        return kept[len(VERSION) :].encode()
    return row_json(kind, orjson.loads(data))


def render(rows: bytes) -> bytes:
    """Replace the markers in joined rows with the ages as of now."""
    current = printers.now()
    done: dict[bytes, bytes] = {}

    def replace(match: re.Match[bytes]) -> bytes:
        marker = match[0]
        text = done.get(marker)
        if text is None:
            moment = datetime.fromtimestamp(float(match[1]), UTC)
            template: str = orjson.loads(b'"' + match[2] + b'"')
            text = done[marker] = orjson.dumps(
                template.format(printers.human_duration(current - moment))
            )
        return text

    return _MARKER.sub(replace, rows)
