"""System checks (``manage.py check``): the kind registry must be complete and consistent."""

from __future__ import annotations

from typing import Any

from django.core import checks

from clusterapi.admission import names
from clusterapi.resources import KINDS, printers

# "log" is served on the event loop by clusterapi.api.podlogs (streams), the rest by views.
KNOWN_SUBRESOURCES = {"status", "scale", "binding", "finalize", "token", "eviction", "log"}


@checks.register()
def kind_registry(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Every kind has a schema, a unique plural, a valid name rule and served subresources."""
    problems: list[checks.CheckMessage] = []
    seen: set[tuple[str, str, str]] = set()
    for kind in KINDS:
        key = (kind.group, kind.version, kind.plural)
        if key in seen:
            problems.append(checks.Error(f"{kind.kind}: {key} is declared twice", id="berth.E001"))
        seen.add(key)
        try:
            kind.definition  # noqa: B018 - raises when the schema is missing
        except LookupError as exc:
            if not kind.reader:  # computed kinds have none
                problems.append(checks.Error(f"{kind.kind}: {exc}", id="berth.E002"))
        if kind.naming not in names.RULES:
            problems.append(
                checks.Error(f"{kind.kind}: unknown name rule {kind.naming!r}", id="berth.E003")
            )
        unknown = set(kind.subresources) - KNOWN_SUBRESOURCES
        if unknown:
            problems.append(
                checks.Error(
                    f"{kind.kind}: subresources {sorted(unknown)} have no handler", id="berth.E004"
                )
            )
        if kind.kind not in printers.COLUMNS and not kind.review and not kind.reader:
            problems.append(
                checks.Warning(f"{kind.kind}: no printer columns; Name/Created At", id="berth.W001")
            )
    return problems
