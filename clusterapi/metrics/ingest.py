"""``POST /apis/metrics.berth.dev/v1/samples``: node agents report what they measured.

Body (``SampleBatch``), one per interval per agent process::

    {"apiVersion": "metrics.berth.dev/v1", "kind": "SampleBatch", "items": [
      {"node": "n1", "time": 1760000000.25, "window": 15.004, "cpu": 250000000,
       "memory": 1073741824, "signature": "...",
       "pods": [{"namespace": "default", "name": "web-1", "uid": "...", "window": 15.004,
                 "containers": [{"name": "web", "cpu": 1200000, "memory": 52428800}]}]}]}

``time`` is the end of the window (seconds since the epoch), ``cpu`` nanocores averaged over
the window, ``memory`` bytes of working set.

Who may report what
-------------------
The request passes the authorizer through the Node authorizer's static rules (``create`` of
``samples`` in ``metrics.berth.dev``, for node identities only; ``clusterapi.rbac.node``).
Here, then: the caller must be a node (``system:node:<name>`` in ``system:nodes``, not even
cluster-admin reports measurements); each entry is for the caller's node or signed with the
credential of the node it names (``clusterapi.metrics.signing``); and each pod sample is for
a pod bound to that entry's node. Anything else refuses the whole batch with 403, and
nothing is written. A pod that no longer exists (or exists under a new uid) is skipped
without error: it was deleted while the sample was in flight, which is no forgery.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from clusterapi.authn import User
from clusterapi.core.errors import bad_request, forbidden
from clusterapi.metrics import config, signing
from clusterapi.metrics.models import Sample

Obj = dict[str, Any]
API_VERSION = "metrics.berth.dev/v1"
KIND = "SampleBatch"
MAX_WINDOW = 3600.0
_CHUNK = 400


@dataclass(frozen=True)
class Accepted:
    """What a batch stored."""

    nodes: int
    pods: int
    skipped_pods: int


def _int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise bad_request(f"{where}: Invalid value: {value!r}: must be a non-negative number")
    return int(value)


def _window(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise bad_request(f"{where}: Invalid value: {value!r}: must be a number of seconds")
    if not 0 < value <= MAX_WINDOW:
        raise bad_request(f"{where}: Invalid value: {value}: must be in (0, {int(MAX_WINDOW)}]")
    return float(value)


def _str(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise bad_request(f"{where}: Required value: a non-empty string")
    return value


def _containers(value: Any, where: str) -> list[Obj]:
    if not isinstance(value, list):
        raise bad_request(f"{where}: Invalid value: must be a list")
    out = []
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise bad_request(f"{where}[{i}]: Invalid value: must be an object")
        out.append(
            {
                "name": _str(item.get("name"), f"{where}[{i}].name"),
                "cpu": _int(item.get("cpu"), f"{where}[{i}].cpu"),
                "memory": _int(item.get("memory"), f"{where}[{i}].memory"),
            }
        )
    return out


def _entries(body: Any) -> list[Obj]:
    if not isinstance(body, dict) or body.get("kind", KIND) != KIND:
        raise bad_request(f"the body of the request must be a {KIND} object")
    items = body.get("items")
    if not isinstance(items, list):
        raise bad_request("items: Required value: a list of node samples")
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise bad_request(f"items[{i}]: Invalid value: must be an object")
        pods = item.get("pods") or []
        if not isinstance(pods, list) or not all(isinstance(p, dict) for p in pods):
            raise bad_request(f"items[{i}].pods: Invalid value: must be a list of objects")
    return items


def _credential_digests(nodes: Iterable[str]) -> dict[str, list[str]]:
    """Node name → digests of its unexpired node credentials."""
    from clusterapi.core.models import ApiToken
    from clusterapi.nodeagent.credentials import NODE_USER_PREFIX

    users = [NODE_USER_PREFIX + n for n in nodes]
    out: dict[str, list[str]] = {}
    now = timezone.now()
    for start in range(0, len(users), _CHUNK):
        rows = (
            ApiToken.objects.filter(username__in=users[start : start + _CHUNK])
            .filter(Q(expires__isnull=True) | Q(expires__gt=now))
            .values_list("username", "digest")
        )
        for username, digest in rows:
            out.setdefault(username[len(NODE_USER_PREFIX) :], []).append(digest)
    return out


def _check_nodes(caller: str, entries: list[Obj]) -> None:
    others = {str(e.get("node")) for e in entries} - {caller}
    if not others:
        return
    digests = _credential_digests(sorted(others))
    for entry in entries:
        node = str(entry.get("node"))
        if node == caller:
            continue
        keys = [signing.key_from_digest(d) for d in digests.get(node, ())]
        if not any(signing.verify(key, entry) for key in keys):
            raise forbidden(
                f'node "{caller}" is not allowed to report metrics for node "{node}": '
                "the entry is not signed with that node's credential"
            )


def _bound_pods(keys: set[tuple[str, str]]) -> dict[tuple[str, str], tuple[str, str]]:
    """(namespace, name) → (uid, spec.nodeName) of the pods that exist now."""
    from clusterapi.core.models import Resource

    found: dict[tuple[str, str], tuple[str, str]] = {}
    ordered = sorted(keys)
    for start in range(0, len(ordered), _CHUNK):
        chunk = ordered[start : start + _CHUNK]
        rows = Resource.objects.filter(
            group="",
            resource="pods",
            namespace__in={ns for ns, _ in chunk},
            name__in={name for _, name in chunk},
        ).values_list("namespace", "name", "data")
        for namespace, name, data in rows:
            if (namespace, name) in keys:
                pod = orjson.loads(data)
                found[(namespace, name)] = (
                    str(pod["metadata"].get("uid", "")),
                    str((pod.get("spec") or {}).get("nodeName") or ""),
                )
    return found


def _sample_time(value: Any, where: str, now: datetime) -> datetime:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise bad_request(f"{where}: Invalid value: {value!r}: must be seconds since the epoch")
    moment = datetime.fromtimestamp(float(value), UTC)
    if abs((moment - now).total_seconds()) > config.max_skew_seconds():
        raise bad_request(
            f"{where}: Invalid value: {value}: more than {int(config.max_skew_seconds())}s from "
            "the API server's clock"
        )
    return moment


def ingest(user: User | None, body: Any) -> Accepted:
    """Check and store one batch (see the module docstring); raises 400/403 ``ApiError``."""
    from clusterapi.rbac.node import node_identity

    caller, is_node = node_identity(user)
    if not is_node or not caller:
        raise forbidden(
            f'User "{user.name if user else "system:anonymous"}" cannot report metrics: '
            "only node identities (group system:nodes) report samples"
        )
    entries = _entries(body)
    now = timezone.now()
    _check_nodes(caller, entries)
    pod_keys = {
        (_str(p.get("namespace"), "pods.namespace"), _str(p.get("name"), "pods.name"))
        for e in entries
        for p in e.get("pods") or ()
    }
    bound = _bound_pods(pod_keys) if pod_keys else {}
    rows: list[Sample] = []
    nodes = pods = skipped = 0
    for i, entry in enumerate(entries):
        where = f"items[{i}]"
        node = _str(entry.get("node"), f"{where}.node")
        moment = _sample_time(entry.get("time"), f"{where}.time", now)
        rows.append(
            Sample(
                kind=Sample.NODE,
                name=node,
                node=node,
                time=moment,
                window=_window(entry.get("window"), f"{where}.window"),
                cpu=_int(entry.get("cpu"), f"{where}.cpu"),
                memory=_int(entry.get("memory"), f"{where}.memory"),
            )
        )
        nodes += 1
        for j, pod in enumerate(entry.get("pods") or ()):
            pwhere = f"{where}.pods[{j}]"
            key = (str(pod["namespace"]), str(pod["name"]))
            uid = str(pod.get("uid") or "")
            current = bound.get(key)
            if current is None or (uid and uid != current[0]):
                skipped += 1
                continue
            if current[1] != node:
                raise forbidden(
                    f'node "{node}" is not allowed to report metrics of pod "{key[0]}/{key[1]}": '
                    f'the pod is not bound to node "{node}"'
                )
            containers = _containers(pod.get("containers") or [], f"{pwhere}.containers")
            rows.append(
                Sample(
                    kind=Sample.POD,
                    namespace=key[0],
                    name=key[1],
                    uid=current[0],
                    node=node,
                    time=moment,
                    window=_window(pod.get("window", entry.get("window")), f"{pwhere}.window"),
                    cpu=sum(c["cpu"] for c in containers),
                    memory=sum(c["memory"] for c in containers),
                    containers=containers,
                )
            )
            pods += 1
    with transaction.atomic():
        Sample.objects.bulk_create(rows, batch_size=500)
    return Accepted(nodes=nodes, pods=pods, skipped_pods=skipped)
