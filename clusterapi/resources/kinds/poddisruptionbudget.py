"""policy/v1 PodDisruptionBudget: how many selected pods voluntary disruptions may take down.

``spec.selector`` picks pods in the budget's namespace (``{}`` all of them, null none);
``spec.minAvailable`` or ``spec.maxUnavailable`` (an integer or a percentage, never both)
says how many must stay healthy. The disruption controller
(``clusterapi.controllers.disruption``) keeps ``status`` current; the eviction subresource
reads ``status.disruptionsAllowed`` and records evictions in ``status.disruptedPods``.
"""

from __future__ import annotations

import re

from clusterapi.resources.registry import Kind, Obj

_PERCENT = re.compile(r"^[0-9]+%$")


def _defaults(obj: Obj) -> None:
    status = obj.get("status")
    if isinstance(status, dict):
        # These counters are not omitempty upstream: a new budget reads 0 until computed.
        for key in ("disruptionsAllowed", "currentHealthy", "desiredHealthy", "expectedPods"):
            status.setdefault(key, 0)


def _int_or_percent(path: str, value: object) -> list[tuple[str, str, str]]:
    if isinstance(value, bool):
        return [(path, str(value), "must be an integer or percentage (e.g '5%')")]
    if isinstance(value, int):
        if value < 0:
            return [(path, str(value), "must be greater than or equal to 0")]
        return []
    text = str(value)
    if not _PERCENT.match(text):
        return [(path, text, "must be an integer or percentage (e.g '5%')")]
    if int(text[:-1]) > 100:
        return [(path, text, "must not be greater than 100%")]
    return []


def _validate(obj: Obj, old: Obj | None) -> list[tuple[str, str, str]]:
    spec = obj.get("spec") or {}
    problems: list[tuple[str, str, str]] = []
    if spec.get("minAvailable") is not None and spec.get("maxUnavailable") is not None:
        problems.append(("spec", "", "minAvailable and maxUnavailable cannot be both set"))
    for key in ("minAvailable", "maxUnavailable"):
        if spec.get(key) is not None:
            problems.extend(_int_or_percent(f"spec.{key}", spec[key]))
    policy = spec.get("unhealthyPodEvictionPolicy")
    if policy is not None and policy not in ("IfHealthyBudget", "AlwaysAllow"):
        problems.append(
            (
                "spec.unhealthyPodEvictionPolicy",
                str(policy),
                'supported values: "AlwaysAllow", "IfHealthyBudget"',
            )
        )
    return problems


KIND = Kind(
    group="policy",
    version="v1",
    kind="PodDisruptionBudget",
    plural="poddisruptionbudgets",
    short_names=("pdb",),
    subresources=("status",),
    defaults=_defaults,
    validate=_validate,
)
