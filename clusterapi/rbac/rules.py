"""Policy rules: the ``rbac.authorization.k8s.io/v1`` PolicyRule, how it matches, how it covers.

Role
----
Everything in ``clusterapi.rbac`` that looks at a single rule goes through this module:

* ``Rule`` is an immutable PolicyRule (verbs, apiGroups, resources, resourceNames,
  nonResourceURLs), parsed leniently from stored JSON with ``Rule.from_json`` and written
  back with ``Rule.to_json``.
* ``verb_matches`` ... ``non_resource_url_matches`` are the five match predicates of
  Kubernetes' ``evaluation_helpers.go``, and ``allows`` combines them exactly as the RBAC
  authorizer's ``RuleAllows`` does (verb ∧ group ∧ resource ∧ name for resource requests,
  verb ∧ URL for the rest).
* ``covers`` is ``Covers`` from the escalation check: the servant rules are broken down to
  one (group, resource, verb, name) or (URL, verb) tuple each, and every tuple must be covered
  by a single owner rule. ``compact_rules`` and ``compact_string`` render what is missing the
  way upstream's "attempting to grant RBAC permissions not currently held" message does.

No database and no Django here: the authorizer's pure core and the property tests use it on
plain values.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from clusterapi.admission.names import go_quote

VERB_ALL = "*"
API_GROUP_ALL = "*"
RESOURCE_ALL = "*"
NON_RESOURCE_ALL = "*"


def _strings(value: Any) -> tuple[str, ...]:
    # Stored objects passed schema validation, but the authorizer must never crash on a
    # malformed one: anything that is not a list of strings contributes nothing.
    if not isinstance(value, list | tuple):
        return ()
    return tuple(v for v in value if isinstance(v, str))


@dataclass(frozen=True)
class Rule:
    """One PolicyRule. Empty tuples stand for absent (or empty) lists, as upstream."""

    verbs: tuple[str, ...] = ()
    api_groups: tuple[str, ...] = ()
    resources: tuple[str, ...] = ()
    resource_names: tuple[str, ...] = ()
    non_resource_urls: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | Any) -> Rule:
        """A rule from its JSON form (``{"verbs": [...], "apiGroups": [...], ...}``)."""
        if not isinstance(data, Mapping):
            return cls()
        return cls(
            verbs=_strings(data.get("verbs")),
            api_groups=_strings(data.get("apiGroups")),
            resources=_strings(data.get("resources")),
            resource_names=_strings(data.get("resourceNames")),
            non_resource_urls=_strings(data.get("nonResourceURLs")),
        )

    @classmethod
    def of(
        cls,
        verbs: Iterable[str],
        *,
        groups: Iterable[str] = (),
        resources: Iterable[str] = (),
        names: Iterable[str] = (),
        urls: Iterable[str] = (),
    ) -> Rule:
        """A rule from keyword lists (for code and tests that build rules by hand)."""
        return cls(tuple(verbs), tuple(groups), tuple(resources), tuple(names), tuple(urls))

    def to_json(self) -> dict[str, list[str]]:
        """The JSON form, in the field order the API serves (empty optional lists omitted)."""
        out: dict[str, list[str]] = {"verbs": list(self.verbs)}
        if self.api_groups:
            out["apiGroups"] = list(self.api_groups)
        if self.resources:
            out["resources"] = list(self.resources)
        if self.resource_names:
            out["resourceNames"] = list(self.resource_names)
        if self.non_resource_urls:
            out["nonResourceURLs"] = list(self.non_resource_urls)
        return out


def rules_from_json(data: Any) -> tuple[Rule, ...]:
    """The ``rules`` list of a Role or ClusterRole (``None`` and junk read as no rules)."""
    if not isinstance(data, list):
        return ()
    return tuple(Rule.from_json(item) for item in data)


# --- matching (evaluation_helpers.go) -------------------------------------------------------


def verb_matches(rule: Rule, verb: str) -> bool:
    return VERB_ALL in rule.verbs or verb in rule.verbs


def api_group_matches(rule: Rule, group: str) -> bool:
    return API_GROUP_ALL in rule.api_groups or group in rule.api_groups


def resource_matches(rule: Rule, combined: str, subresource: str) -> bool:
    """``*``, an exact ``resource`` or ``resource/subresource``, or ``*/subresource``.

    A bare ``pods`` never matches ``pods/log``, and ``pods/*`` only matches a subresource
    literally named ``*``: only a leading ``*/`` is a wildcard.
    """
    for candidate in rule.resources:
        if candidate in (RESOURCE_ALL, combined):
            return True
        if (
            subresource
            and len(candidate) == len(subresource) + 2
            and candidate.startswith("*/")
            and candidate.endswith(subresource)
        ):
            return True
    return False


def resource_name_matches(rule: Rule, name: str) -> bool:
    """No resourceNames means every name (including none, as for list or create)."""
    return not rule.resource_names or name in rule.resource_names


def non_resource_url_matches(rule: Rule, path: str) -> bool:
    """``*``, the exact path, or a prefix given by a trailing ``*`` (``/healthz/*``)."""
    for candidate in rule.non_resource_urls:
        if candidate in (NON_RESOURCE_ALL, path):
            return True
        # Go's TrimRight removes every trailing "*", so "/a**" is the prefix "/a" too.
        if candidate.endswith("*") and path.startswith(candidate.rstrip("*")):
            return True
    return False


def allows_resource(
    rule: Rule, verb: str, group: str, resource: str, subresource: str, name: str
) -> bool:
    """Whether ``rule`` allows a resource request with these attributes."""
    combined = f"{resource}/{subresource}" if subresource else resource
    return (
        verb_matches(rule, verb)
        and api_group_matches(rule, group)
        and resource_matches(rule, combined, subresource)
        and resource_name_matches(rule, name)
    )


def allows_non_resource(rule: Rule, verb: str, path: str) -> bool:
    """Whether ``rule`` allows a non-resource request (``/healthz``, ``/version``, ...)."""
    return verb_matches(rule, verb) and non_resource_url_matches(rule, path)


# --- coverage (policy_comparator.go) --------------------------------------------------------


def breakdown(rule: Rule) -> list[Rule]:
    """The rule as atomic rules with one group, resource, verb and (if any) name each.

    Non-resource URLs only combine with verbs. The atomic rules are in upstream's order
    (group, then resource, then verb, then name), which decides how missing verbs group.
    """
    out: list[Rule] = []
    for group in rule.api_groups:
        for resource in rule.resources:
            for verb in rule.verbs:
                if rule.resource_names:
                    out.extend(
                        Rule((verb,), (group,), (resource,), (name,))
                        for name in rule.resource_names
                    )
                else:
                    out.append(Rule((verb,), (group,), (resource,)))
    for url in rule.non_resource_urls:
        out.extend(Rule((verb,), non_resource_urls=(url,)) for verb in rule.verbs)
    return out


def _has_all(owned: Sequence[str], wanted: Sequence[str]) -> bool:
    return all(item in owned for item in wanted)


def _resources_cover(owned: Sequence[str], wanted: Sequence[str]) -> bool:
    if RESOURCE_ALL in owned or _has_all(owned, wanted):
        return True
    for path in wanted:
        if path in owned:
            continue
        # A subresource is also covered by "*/<subresource>"; a plain resource is not.
        if "/" not in path:
            return False
        if "*/" + path.split("/", 1)[1] not in owned:
            return False
    return True


def _url_covers(owner: str, path: str) -> bool:
    return owner == path or (owner.endswith("*") and path.startswith(owner.rstrip("*")))


def _urls_cover(owned: Sequence[str], wanted: Sequence[str]) -> bool:
    return all(any(_url_covers(owner, path) for owner in owned) for path in wanted)


def rule_covers(owner: Rule, sub: Rule) -> bool:
    """Whether one owner rule covers one atomic rule (as ``breakdown`` makes them)."""
    verbs = VERB_ALL in owner.verbs or _has_all(owner.verbs, sub.verbs)
    groups = API_GROUP_ALL in owner.api_groups or _has_all(owner.api_groups, sub.api_groups)
    resources = _resources_cover(owner.resources, sub.resources)
    urls = _urls_cover(owner.non_resource_urls, sub.non_resource_urls)
    if sub.resource_names:
        names = not owner.resource_names or _has_all(owner.resource_names, sub.resource_names)
    else:
        # An owner limited to some names does not cover the unrestricted rule.
        names = not owner.resource_names
    return verbs and groups and resources and urls and names


def covers(owner_rules: Sequence[Rule], servant_rules: Iterable[Rule]) -> tuple[bool, list[Rule]]:
    """Whether ``owner_rules`` hold every permission of ``servant_rules``; and what is missing."""
    missing = [
        sub
        for servant in servant_rules
        for sub in breakdown(servant)
        if not any(rule_covers(owner, sub) for owner in owner_rules)
    ]
    return not missing, missing


# --- rendering (policy_compact.go, CompactString) -------------------------------------------


def compact_rules(rules: Iterable[Rule]) -> list[Rule]:
    """Merge atomic rules that differ only by verb (one group, one resource, nothing else)."""
    out: list[Rule] = []
    simple: dict[tuple[str, str], list[str]] = {}
    for rule in rules:
        if (
            not rule.resource_names
            and not rule.non_resource_urls
            and len(rule.api_groups) == 1
            and len(rule.resources) == 1
        ):
            simple.setdefault((rule.api_groups[0], rule.resources[0]), []).extend(rule.verbs)
        else:
            out.append(rule)
    out.extend(
        Rule(tuple(verbs), (group,), (resource,)) for (group, resource), verbs in simple.items()
    )
    return out


def go_string_list(values: Sequence[str]) -> str:
    """Go's ``%q`` of a ``[]string``: ``["a" "b"]``."""
    return "[" + " ".join(go_quote(v) for v in values) + "]"


def compact_string(rule: Rule) -> str:
    """``{APIGroups:[""], Resources:["pods"], Verbs:["create"]}`` (empty fields left out)."""
    parts: list[str] = []
    if rule.api_groups:
        parts.append("APIGroups:" + go_string_list(rule.api_groups))
    if rule.resources:
        parts.append("Resources:" + go_string_list(rule.resources))
    if rule.non_resource_urls:
        parts.append("NonResourceURLs:" + go_string_list(rule.non_resource_urls))
    if rule.resource_names:
        parts.append("ResourceNames:" + go_string_list(rule.resource_names))
    if rule.verbs:
        parts.append("Verbs:" + go_string_list(rule.verbs))
    return "{" + ", ".join(parts) + "}"
