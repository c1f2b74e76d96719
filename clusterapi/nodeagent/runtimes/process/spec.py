"""From a container's spec to what runs: the program, its environment and its files.

* **Image → program.** With ``command`` set, the command runs as given (``args`` after it),
  found on the host's ``PATH``. Without it, the image's repository name (registry, tag and
  digest stripped) picks the entrypoint from ``IMAGE_ENTRYPOINTS`` and ``args`` follow it:
  ``python:3.12 args: [-m, http.server]`` runs ``python3 -m http.server``. Any other image
  without a command cannot run here: the container waits with reason ``ErrImagePull`` and a
  message saying so.
* **Environment**: the host's ``PATH`` (and ``LANG``), then the runtime's own variables
  (``HOSTNAME``, ``KUBERNETES_SERVICE_HOST``/``PORT``, ``PORT``/``BERTH_PORT_*``,
  ``BERTH_ROOT``/``BERTH_VOLUME_*``), then ``envFrom``, then ``env`` (``value`` with
  ``$(VAR)`` expansion, or ``valueFrom`` configMapKeyRef, secretKeyRef, fieldRef,
  resourceFieldRef) — later wins, as upstream.
* **Volumes** are directories under the pod's directory (emptyDir; configMap, secret,
  downwardAPI and projected as files, service-account tokens included; hostPath as the host's
  path). Without a mount namespace a process cannot see them at their ``mountPath``, so each
  container gets a root (``BERTH_ROOT``) holding symlinks at the mount paths, every mount is
  named in ``BERTH_VOLUME_<VOLUME>``, and a mount path written in ``command``, ``args``, an
  ``env`` value or ``workingDir`` is rewritten to the host directory: ``cat /etc/config/k``
  reads the ConfigMap's key. ``readOnly`` is not enforced.
* **Service-account tokens** (projected ``serviceAccountToken`` sources) are requested
  through TokenRequest bound to the pod and kept fresh while it runs (``incluster``).
  In-cluster clients find them in one of two ways, chosen at run time by what the machine
  allows (``incluster.decide``): with a mount namespace per container (agent running as
  root, ``unshare --mount`` permitted) the volume mounted at
  ``/var/run/secrets/kubernetes.io/serviceaccount`` is bind-mounted read-only at that very
  path, so ``load_incluster_config()`` and kubectl work unmodified; otherwise the container
  gets ``KUBECONFIG`` naming a kubeconfig in the pod directory (in-cluster server URL, the
  projected ``ca.crt``, the token through an exec credential plugin, the pod's namespace), so
  ``kubectl`` and ``kubernetes.config.load_config()`` work. ``BERTH_POD_MOUNT_NAMESPACE=off``
  forces the second way.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clusterapi.nodeagent.runtimes.process import incluster
from clusterapi.scheduler import quantity

Obj = dict[str, Any]
Get = Callable[[str], Awaitable[Obj | None]]
Post = Callable[[str, Obj], Awaitable[Obj]]

IMAGE_ENTRYPOINTS: dict[str, tuple[str, ...]] = {
    "python": ("python3",),
    "pypy": ("python3",),
    "busybox": ("sh",),
    "alpine": ("sh",),
    "debian": ("sh",),
    "ubuntu": ("sh",),
    "bash": ("bash",),
}


class ImageError(Exception):
    """The image cannot be run by this runtime (reported as ``ErrImagePull``)."""


class ConfigError(Exception):
    """A referenced object or key is missing (reported as ``CreateContainerConfigError``)."""


@dataclass
class Api:
    """The API calls the runtime makes with the node's credential."""

    get: Get
    post: Post
    server_host: str = ""
    server_port: str = ""


def image_repository(image: str) -> str:
    """``docker.io/library/python:3.12@sha256:..`` → ``python``."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return last.split(":", 1)[0].lower()


def entrypoint(image: str) -> tuple[str, ...]:
    """The program an image without ``command`` runs; raises ``ImageError``."""
    repository = image_repository(image)
    program = IMAGE_ENTRYPOINTS.get(repository)
    if program is None:
        known = ", ".join(sorted(IMAGE_ENTRYPOINTS))
        raise ImageError(
            f'image "{image}" has no entrypoint in the process runtime: set the container\'s '
            f"command (images run without one: {known})"
        )
    return program


def expand(text: str, env: dict[str, str]) -> str:
    """Upstream's ``$(VAR)`` expansion: defined names are replaced, ``$$`` is ``$``, anything
    else stays as written."""
    out: list[str] = []
    i = 0
    while i < len(text):
        if text[i] == "$" and i + 1 < len(text):
            following = text[i + 1]
            if following == "$":
                out.append("$")
                i += 2
                continue
            if following == "(":
                end = text.find(")", i + 2)
                if end != -1 and text[i + 2 : end] in env:
                    out.append(env[text[i + 2 : end]])
                    i = end + 1
                    continue
        out.append(text[i])
        i += 1
    return "".join(out)


def env_name(text: str) -> str:
    """A name made fit for an environment variable: ``my-port`` → ``MY_PORT``."""
    return re.sub(r"[^A-Za-z0-9_]", "_", text).upper()


class Resolver:
    """Reads what a pod references (ConfigMaps, Secrets) once per pod run."""

    def __init__(self, pod: Obj, api: Api, pod_ip: str, host_ip: str) -> None:
        self.pod = pod
        self.api = api
        self.pod_ip = pod_ip
        self.host_ip = host_ip
        self.namespace = str(pod["metadata"].get("namespace") or "default")
        self._cache: dict[tuple[str, str], Obj | None] = {}
        # The service-account tokens written into the pod's volumes (kept fresh by the pod).
        self.tokens: list[incluster.ProjectedToken] = []

    async def _object(self, plural: str, name: str) -> Obj | None:
        key = (plural, name)
        if key not in self._cache:
            self._cache[key] = await self.api.get(
                f"/api/v1/namespaces/{self.namespace}/{plural}/{name}"
            )
        return self._cache[key]

    async def data(self, plural: str, name: str, optional: bool) -> dict[str, bytes] | None:
        """The decoded data of a ConfigMap or Secret; None when optional and missing."""
        obj = await self._object(plural, name)
        if obj is None:
            if optional:
                return None
            raise ConfigError(f'{plural[:-1]} "{name}" not found')
        out: dict[str, bytes] = {}
        if plural == "secrets":
            for key, value in (obj.get("data") or {}).items():
                out[key] = base64.b64decode(value)
            for key, value in (obj.get("stringData") or {}).items():
                out[key] = str(value).encode()
        else:
            for key, value in (obj.get("data") or {}).items():
                out[key] = str(value).encode()
            for key, value in (obj.get("binaryData") or {}).items():
                out[key] = base64.b64decode(value)
        return out

    async def key(self, plural: str, ref: Obj) -> str | None:
        """A ``configMapKeyRef``/``secretKeyRef`` value; None when optional and missing."""
        name, key = str(ref.get("name") or ""), str(ref.get("key") or "")
        optional = bool(ref.get("optional"))
        data = await self.data(plural, name, optional)
        if data is None:
            return None
        if key not in data:
            if optional:
                return None
            kind = "Secret" if plural == "secrets" else "ConfigMap"
            raise ConfigError(f"couldn't find key {key} in {kind} {self.namespace}/{name}")
        return data[key].decode(errors="replace")

    def field(self, path: str) -> str:
        """A ``fieldRef`` value."""
        meta, spec = self.pod.get("metadata") or {}, self.pod.get("spec") or {}
        match = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
        if match:
            return str((meta.get(match.group(1)) or {}).get(match.group(2), ""))
        simple = {
            "metadata.name": meta.get("name"),
            "metadata.namespace": self.namespace,
            "metadata.uid": meta.get("uid"),
            "spec.nodeName": spec.get("nodeName"),
            "spec.serviceAccountName": spec.get("serviceAccountName") or "default",
            "status.hostIP": self.host_ip,
            "status.hostIPs": self.host_ip,
            "status.podIP": self.pod_ip,
            "status.podIPs": self.pod_ip,
        }
        if path in ("metadata.labels", "metadata.annotations"):
            values = meta.get(path.split(".")[1]) or {}
            return "\n".join(f'{k}="{v}"' for k, v in sorted(values.items()))
        if path not in simple:
            raise ConfigError(f"unsupported fieldRef {path!r}")
        return str(simple[path] or "")

    def resource(self, ref: Obj, container: Obj | None) -> str:
        """A ``resourceFieldRef`` value (limits default to the node's capacity: unbounded
        here, so the host's)."""
        if container is None:
            wanted = str(ref.get("containerName") or "")
            containers = (self.pod.get("spec") or {}).get("containers") or []
            container = next((c for c in containers if c.get("name") == wanted), None) or {}
        resource = str(ref.get("resource") or "")
        section, _, name = resource.partition(".")
        value = ((container.get("resources") or {}).get(section) or {}).get(name)
        if value is None:
            if section == "requests" and name == "cpu":
                value = "0"
            elif name == "cpu":
                value = str(os.cpu_count() or 1)
            elif name == "memory":
                value = str(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
            else:
                value = "0"
        divisor = quantity.parse(str(ref.get("divisor") or "1"))
        amount = quantity.parse(str(value)) / (divisor or 1)
        return str(-((-amount.numerator) // amount.denominator))  # rounded up, as upstream


async def environment(resolver: Resolver, container: Obj, base: dict[str, str]) -> dict[str, str]:
    """The container's environment: ``base``, then ``envFrom``, then ``env``."""
    env = dict(base)
    for source in container.get("envFrom") or ():
        prefix = str(source.get("prefix") or "")
        for plural, ref_key in (("configmaps", "configMapRef"), ("secrets", "secretRef")):
            ref = source.get(ref_key)
            if not ref:
                continue
            data = await resolver.data(plural, str(ref.get("name")), bool(ref.get("optional")))
            for key, raw in (data or {}).items():
                env[prefix + key] = raw.decode(errors="replace")
    for item in container.get("env") or ():
        name = str(item.get("name"))
        source = item.get("valueFrom")
        value: str | None
        if not source:
            value = expand(str(item.get("value") or ""), env)
        elif source.get("configMapKeyRef"):
            value = await resolver.key("configmaps", source["configMapKeyRef"])
        elif source.get("secretKeyRef"):
            value = await resolver.key("secrets", source["secretKeyRef"])
        elif source.get("fieldRef"):
            value = resolver.field(str(source["fieldRef"].get("fieldPath") or ""))
        elif source.get("resourceFieldRef"):
            value = resolver.resource(source["resourceFieldRef"], container)
        else:
            raise ConfigError(f"env {name}: unsupported valueFrom")
        if value is not None:
            env[name] = value
    return env


# --- volumes -----------------------------------------------------------------------------------


def _write(path: Path, content: bytes, mode: int | None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(content)
    tmp.chmod(mode if mode is not None else 0o644)
    tmp.replace(path)


def _items(
    data: dict[str, bytes], spec: Obj, plural: str, name: str
) -> list[tuple[str, bytes, int | None]]:
    items = spec.get("items")
    default_mode = spec.get("defaultMode")
    if not items:
        return [(key, value, default_mode) for key, value in data.items()]
    out = []
    for item in items:
        key = str(item.get("key"))
        if key not in data:
            if spec.get("optional"):
                continue
            raise ConfigError(
                f"configmap references non-existent config key: {key}"
                if plural == "configmaps"
                else f"references non-existent secret key: {key}"
            )
        mode = item.get("mode", default_mode)
        out.append((str(item.get("path") or key), data[key], mode))
    return out


async def _source_files(
    resolver: Resolver, source: Obj, defaults: Obj
) -> list[tuple[str, bytes, int | None]]:
    """The files of one volume (or projected) source."""
    spec = {"defaultMode": defaults.get("defaultMode"), **source}
    for plural, key in (("configmaps", "configMap"), ("secrets", "secret")):
        if key in source:
            ref = {**source[key]}
            if "defaultMode" not in ref:
                ref["defaultMode"] = defaults.get("defaultMode")
            name = str(ref.get("name") or ref.get("secretName") or "")
            data = await resolver.data(plural, name, bool(ref.get("optional")))
            return _items(data or {}, ref, plural, name)
    if "downwardAPI" in source:
        out = []
        for item in (source["downwardAPI"] or {}).get("items") or ():
            if item.get("fieldRef"):
                value = resolver.field(str(item["fieldRef"].get("fieldPath")))
            else:
                value = resolver.resource(item.get("resourceFieldRef") or {}, None)
            mode = item.get("mode", spec.get("defaultMode"))
            out.append((str(item.get("path")), value.encode(), mode))
        return out
    raise ConfigError(f"unsupported volume source {sorted(source)}")


async def materialize(resolver: Resolver, volume: Obj, volumes_dir: Path) -> Path:
    """Make one pod volume exist on disk; returns its directory (or file, for a hostPath)."""
    name = str(volume.get("name"))
    target = volumes_dir / name
    if "hostPath" in volume:
        spec = volume["hostPath"] or {}
        path = Path(str(spec.get("path")))
        kind = str(spec.get("type") or "")
        if kind == "DirectoryOrCreate":
            path.mkdir(parents=True, exist_ok=True)
        elif kind == "FileOrCreate" and not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
        elif kind and not path.exists():
            raise ConfigError(f"hostPath type check failed: {path} does not exist")
        return path
    if "emptyDir" in volume:
        target.mkdir(parents=True, exist_ok=True)
        return target
    files: list[tuple[str, bytes, int | None]] = []
    tokens: list[tuple[str, incluster.ProjectedToken]] = []
    if "projected" in volume:
        projected = volume["projected"] or {}
        for source in projected.get("sources") or ():
            if "serviceAccountToken" in source:
                token_spec = source["serviceAccountToken"] or {}
                try:
                    token = await incluster.request_token(resolver.api, resolver.pod, token_spec)
                except incluster.TokenError as exc:
                    # Upstream's words for a kubelet's failed mount; the pod retries.
                    raise ConfigError(
                        f'MountVolume.SetUp failed for volume "{name}" : {exc}'
                    ) from exc
                relative = str(token_spec.get("path") or "token")
                files.append((relative, token.token.encode(), 0o600))
                tokens.append((relative, token))
            else:
                files.extend(await _source_files(resolver, source, projected))
    elif any(k in volume for k in ("configMap", "secret", "downwardAPI")):
        files = await _source_files(resolver, volume, {})
    else:
        kinds = sorted(k for k in volume if k != "name")
        raise ConfigError(
            f"volume {name}: {', '.join(kinds) or 'this'} volumes are not supported by the "
            "process runtime"
        )
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for relative, content, mode in files:
        destination = (target / relative).resolve()
        if not destination.is_relative_to(target.resolve()):
            raise ConfigError(f"volume {name}: path {relative!r} leaves the volume")
        _write(destination, content, mode)
    for relative, token in tokens:
        token.file = (target / relative).resolve()
        resolver.tokens.append(token)
    return target


@dataclass
class Mounts:
    """A container's mounts: its root of symlinks, and mount path → host path."""

    root: Path
    paths: dict[str, Path] = field(default_factory=dict)
    read_only: set[str] = field(default_factory=set)  # mount paths marked ``readOnly``

    def rewrite(self, text: str) -> str:
        """Replace every mount path written in ``text`` by its host path."""
        for mount in sorted(self.paths, key=len, reverse=True):
            pattern = r"(?<![\w./-])" + re.escape(mount) + r"(?=$|[/\s\"':;,)])"
            host = str(self.paths[mount]).replace("\\", "\\\\")
            text = re.sub(pattern, host, text)
        return text

    def env(self, volume_of: dict[str, str]) -> dict[str, str]:
        """``BERTH_ROOT`` and ``BERTH_VOLUME_<VOLUME>`` for each mount."""
        out = {"BERTH_ROOT": str(self.root)}
        for mount, path in self.paths.items():
            out[f"BERTH_VOLUME_{env_name(volume_of[mount])}"] = str(path)
        return out


def mount(container: Obj, volumes: dict[str, Path], root: Path) -> tuple[Mounts, dict[str, str]]:
    """Lay out a container's root: a symlink per ``volumeMount``; returns the mounts and
    mount path → volume name."""
    root.mkdir(parents=True, exist_ok=True)
    mounts = Mounts(root)
    volume_of: dict[str, str] = {}
    for item in container.get("volumeMounts") or ():
        name = str(item.get("name"))
        if name not in volumes:
            raise ConfigError(f'volume "{name}" not found in the pod\'s volumes')
        source = volumes[name]
        sub_path = str(item.get("subPath") or "")
        if sub_path:
            source = source / sub_path
            if not source.exists():
                source.mkdir(parents=True, exist_ok=True)
        mount_path = "/" + str(item.get("mountPath") or "").strip("/")
        link = root / mount_path.lstrip("/")
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.is_file():
            link.unlink()
        elif link.is_dir():
            shutil.rmtree(link)
        link.symlink_to(source)
        mounts.paths[mount_path] = source
        if item.get("readOnly"):
            mounts.read_only.add(mount_path)
        volume_of[mount_path] = name
    return mounts, volume_of
