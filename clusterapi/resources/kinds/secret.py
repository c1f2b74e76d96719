"""core/v1 Secret: sensitive data, base64-encoded in ``data``; ``stringData`` is folded into it."""

from __future__ import annotations

from clusterapi.resources.registry import Kind, Obj


def _defaults(obj: Obj) -> None:
    obj.setdefault("type", "Opaque")


KIND = Kind(
    group="",
    version="v1",
    kind="Secret",
    plural="secrets",
    has_status=False,
    field_selectors={"type": lambda o: str(o.get("type", ""))},
    defaults=_defaults,
)
