"""core/v1 Secret: sensitive data, base64-encoded in ``data``; ``stringData`` is folded into it."""

from __future__ import annotations

import base64

from clusterapi.resources.registry import Kind, Obj


def _defaults(obj: Obj) -> None:
    obj.setdefault("type", "Opaque")
    # stringData is a write-only convenience: folded into data (base64), never stored.
    string_data = obj.pop("stringData", None)
    if isinstance(string_data, dict):
        data = obj.get("data")
        if not isinstance(data, dict):
            data = obj["data"] = {}
        for key, value in string_data.items():
            data[key] = base64.b64encode(str(value).encode()).decode()


KIND = Kind(
    group="",
    version="v1",
    kind="Secret",
    plural="secrets",
    has_status=False,
    field_selectors={"type": lambda o: str(o.get("type", ""))},
    defaults=_defaults,
)
