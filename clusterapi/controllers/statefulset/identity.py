"""StatefulSet pod identity and storage: names, labels, volumes, claims and their retention.

Pure functions of the StatefulSet and one ordinal (upstream ``stateful_set_utils.go``): the pod
``<set>-<i>`` with its identity labels, hostname, subdomain and claim volumes; the claim
``<template>-<set>-<i>``; and which ownerReferences a claim carries under the set's
``persistentVolumeClaimRetentionPolicy``.
"""

from __future__ import annotations

import copy
import re

from clusterapi.controllers import history, pods
from clusterapi.controllers.base import Obj
from clusterapi.resources import registered as _kind
from clusterapi.resources.registry import Kind

COMPONENT = "statefulset-controller"
POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"
_ORDINAL_NAME = re.compile(r"^(.*)-([0-9]+)$")


def statefulset_kind() -> Kind:
    return _kind("apps/v1", "StatefulSet")


def claim_kind() -> Kind:
    return _kind("v1", "PersistentVolumeClaim")


# --- identity -----------------------------------------------------------------------------------


def ordinal_of(set_name: str, pod: Obj) -> int | None:
    """The pod's ordinal when its name is ``<set_name>-<ordinal>``, else None."""
    match = _ORDINAL_NAME.match(str(pod["metadata"].get("name", "")))
    if match is None or match.group(1) != set_name:
        return None
    return int(match.group(2))


def claim_name(template: Obj, set_name: str, ordinal: int) -> str:
    return f"{(template.get('metadata') or {}).get('name', '')}-{set_name}-{ordinal}"


def pod_revision(pod: Obj) -> str:
    return str((pod["metadata"].get("labels") or {}).get(history.HASH_LABEL, ""))


def is_running_and_ready(pod: Obj) -> bool:
    return pods.phase(pod) == "Running" and pods.is_ready(pod)


def is_healthy(pod: Obj | None) -> bool:
    return (
        pod is not None
        and is_running_and_ready(pod)
        and not pod["metadata"].get("deletionTimestamp")
    )


def identity_labels(set_name: str, ordinal: int) -> dict[str, str]:
    return {POD_NAME_LABEL: f"{set_name}-{ordinal}", POD_INDEX_LABEL: str(ordinal)}


def new_pod(sts: Obj, template: Obj, revision: str, ordinal: int) -> Obj:
    """The pod for ``ordinal`` from ``template`` (``newVersionedStatefulSetPod``)."""
    name = sts["metadata"]["name"]
    pod = pods.pod_from_template(template, sts)
    meta = pod["metadata"]
    del meta["generateName"]
    meta["name"] = f"{name}-{ordinal}"
    meta["labels"] = {
        **(meta.get("labels") or {}),
        **identity_labels(name, ordinal),
        history.HASH_LABEL: revision,
    }
    spec = pod["spec"]
    spec["hostname"] = meta["name"]
    service = (sts.get("spec") or {}).get("serviceName")
    if service:
        spec["subdomain"] = service
    claims = (sts.get("spec") or {}).get("volumeClaimTemplates") or []
    if claims:
        names = {(t.get("metadata") or {}).get("name") for t in claims}
        volumes = [v for v in spec.get("volumes") or () if v.get("name") not in names]
        for claim_template in claims:
            volumes.append(
                {
                    "name": claim_template["metadata"]["name"],
                    "persistentVolumeClaim": {
                        "claimName": claim_name(claim_template, name, ordinal)
                    },
                }
            )
        spec["volumes"] = volumes
    return pod


# --- claims and their retention -----------------------------------------------------------------


def _policy(sts: Obj) -> tuple[str, str]:
    policy = (sts.get("spec") or {}).get("persistentVolumeClaimRetentionPolicy") or {}
    return str(policy.get("whenDeleted") or "Retain"), str(policy.get("whenScaled") or "Retain")


def _pod_ref(pod: Obj) -> Obj:
    meta = pod["metadata"]
    return {"apiVersion": "v1", "kind": "Pod", "name": meta["name"], "uid": meta["uid"]}


def claim_references(claim: Obj, sts: Obj, pod: Obj | None, scaled_down: bool) -> list[Obj]:
    """The claim's ownerReferences under the set's retention policy.

    ``whenDeleted: Delete`` makes the set an owner (the claim goes with the set);
    ``whenScaled: Delete`` makes a scaled-away pod the owner instead (the claim goes with
    that pod). ``Retain`` removes our references again; other owners are left alone.
    """
    when_deleted, when_scaled = _policy(sts)
    set_uid = sts["metadata"]["uid"]
    refs = list(claim["metadata"].get("ownerReferences") or ())
    pod_uid = (pod or {}).get("metadata", {}).get("uid")
    want_set = when_deleted == "Delete" and not (when_scaled == "Delete" and scaled_down)
    want_pod = when_scaled == "Delete" and scaled_down and pod_uid is not None
    kept = [
        r
        for r in refs
        if r.get("uid") != set_uid and not (r.get("kind") == "Pod" and r.get("uid") == pod_uid)
    ]
    if want_set:
        kept.append(next((r for r in refs if r.get("uid") == set_uid), pods.owner_reference(sts)))
    if want_pod and pod is not None:
        kept.append(next((r for r in refs if r.get("uid") == pod_uid), _pod_ref(pod)))
    return kept


def new_claim(sts: Obj, template: Obj, ordinal: int) -> Obj:
    """The claim for ``ordinal`` from a volume claim template (``getPersistentVolumeClaims``)."""
    meta = copy.deepcopy(template.get("metadata") or {})
    selector_labels = ((sts["spec"].get("selector") or {}).get("matchLabels")) or {}
    claim: Obj = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": claim_name(template, sts["metadata"]["name"], ordinal),
            "labels": {**(meta.get("labels") or {}), **selector_labels},
        },
        "spec": copy.deepcopy(template.get("spec") or {}),
    }
    if meta.get("annotations"):
        claim["metadata"]["annotations"] = dict(meta["annotations"])
    refs = claim_references(claim, sts, None, scaled_down=False)
    if refs:
        claim["metadata"]["ownerReferences"] = refs
    return claim
