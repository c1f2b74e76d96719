"""Defaulting shared by several kinds, as upstream's ``SetDefaults_*`` functions do it.

Clients read these defaults back (``kubectl rollout status`` refuses a DaemonSet without an
``updateStrategy.type``; the Python client expects ``status.loadBalancer`` on a Service), so the
store applies them on every create and update before validation.
"""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]


def _container(container: Obj) -> None:
    image = str(container.get("image", ""))
    if "imagePullPolicy" not in container:
        # Upstream: Always for ":latest" or an untagged image, IfNotPresent otherwise.
        last = image.rsplit("/", 1)[-1]
        tagged = ":" in last and not last.endswith(":latest")
        container["imagePullPolicy"] = "IfNotPresent" if tagged or "@" in last else "Always"
    container.setdefault("terminationMessagePath", "/dev/termination-log")
    container.setdefault("terminationMessagePolicy", "File")
    for port in container.get("ports") or ():
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")
    container.setdefault("resources", {})
    for probe_name in ("livenessProbe", "readinessProbe", "startupProbe"):
        probe = container.get(probe_name)
        if isinstance(probe, dict):
            probe.setdefault("timeoutSeconds", 1)
            probe.setdefault("periodSeconds", 10)
            probe.setdefault("successThreshold", 1)
            probe.setdefault("failureThreshold", 3)
            http = probe.get("httpGet")
            if isinstance(http, dict):
                http.setdefault("path", "/")
                http.setdefault("scheme", "HTTP")


def pod_spec(spec: Obj) -> None:
    """Default a PodSpec in place."""
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("enableServiceLinks", True)
    for key in ("containers", "initContainers", "ephemeralContainers"):
        for container in spec.get(key) or ():
            if isinstance(container, dict):
                _container(container)
    for volume in spec.get("volumes") or ():
        if not isinstance(volume, dict):
            continue
        for source in ("configMap", "secret"):
            if isinstance(volume.get(source), dict):
                volume[source].setdefault("defaultMode", 0o644)
        if isinstance(volume.get("hostPath"), dict):
            volume["hostPath"].setdefault("type", "")
    for toleration in spec.get("tolerations") or ():
        if isinstance(toleration, dict) and "operator" not in toleration:
            toleration["operator"] = "Equal"


def pod_template(template: Obj | None) -> None:
    """Default a PodTemplateSpec in place."""
    if not isinstance(template, dict):
        return
    metadata = template.setdefault("metadata", {})
    if isinstance(metadata, dict):
        metadata.setdefault("creationTimestamp", None)
    spec = template.get("spec")
    if isinstance(spec, dict):
        pod_spec(spec)


def spec_of(obj: Obj) -> Obj:
    """The object's spec, created empty when missing (and replaced when not an object)."""
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        spec = obj["spec"] = {}
    return spec


def status_of(obj: Obj) -> Obj:
    """The object's status, created empty when missing (and replaced when not an object)."""
    status = obj.get("status")
    if not isinstance(status, dict):
        status = obj["status"] = {}
    return status


def template_labels_selector(spec: Obj) -> None:
    """Default an RC-style map selector (and labels) from the pod template's labels."""
    template = spec.get("template")
    labels = (template or {}).get("metadata", {}).get("labels") if template else None
    if labels and not spec.get("selector"):
        spec["selector"] = dict(labels)
