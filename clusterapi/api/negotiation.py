"""Reading request bodies and choosing response representations, as Kubernetes clients expect.

Bodies: JSON (also when the Content-Type is missing: the Python client sends none on POST and
DELETE), YAML, and the ``k8s\\0`` protobuf envelope that kubectl's ``create`` generators and
``auth`` commands send with no JSON fallback. Answers are always JSON; the Accept header only
chooses between the plain object, a meta.k8s.io Table, PartialObjectMetadata and aggregated
discovery, read in the client's order of preference.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
import yaml

from clusterapi.store import errors

PROTOBUF = "application/vnd.kubernetes.protobuf"


@dataclass(frozen=True)
class MediaType:
    """One entry of an Accept header: type/subtype and its parameters."""

    type: str
    params: dict[str, str]

    @property
    def as_(self) -> str:
        return self.params.get("as", "")


def parse_accept(header: str) -> list[MediaType]:
    out: list[MediaType] = []
    for part in header.split(","):
        pieces = [p.strip() for p in part.split(";")]
        if not pieces[0]:
            continue
        params: dict[str, str] = {}
        for piece in pieces[1:]:
            if "=" in piece:
                key, value = piece.split("=", 1)
                params[key.strip()] = value.strip()
        out.append(MediaType(pieces[0].lower(), params))
    return out


def wants(header: str, as_: str, group: str, versions: tuple[str, ...]) -> str | None:
    """The version of ``as_`` (Table, APIGroupDiscoveryList, ...) the client prefers, if any.

    Entries are taken in order: a plain JSON entry before any ``as=`` entry means plain JSON.
    """
    for media in parse_accept(header):
        if media.as_ == as_ and media.params.get("g") == group:
            version = media.params.get("v", "")
            if version in versions:
                return version
            continue
        if media.as_:
            continue
        if media.type in ("application/json", "*/*", "application/*", PROTOBUF):
            return None
    return None


def content_type(request: Any) -> str:
    return str(request.META.get("CONTENT_TYPE", "")).split(";")[0].strip().lower()


def decode_body(request: Any, *, allow_empty: bool = False) -> Any:
    """The request body as JSON-shaped data, whatever encoding the client used."""
    body: bytes = request.body
    ctype = content_type(request)
    if not body.strip():
        if allow_empty:
            return None
        raise errors.bad_request("the request body is empty")
    if ctype == PROTOBUF or body[:4] == b"k8s\x00":
        from clusterapi.api import protobuf

        try:
            return protobuf.decode(body)
        except protobuf.ProtobufError as exc:
            raise errors.bad_request(f"unable to decode protobuf body: {exc}") from exc
    if ctype in ("application/yaml", "application/x-yaml", "application/apply-patch+yaml"):
        try:
            return yaml.safe_load(body)
        except yaml.YAMLError as exc:
            raise errors.bad_request(f"error converting YAML to JSON: {exc}") from exc
    if ctype in ("", "application/json", "text/plain", "*/*") or ctype.endswith("+json"):
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise errors.bad_request(
                f"Object 'Kind' is missing in '{body[:200].decode(errors='replace')}'"
                if body.lstrip()[:1] not in (b"{", b"[")
                else f"couldn't get version/kind; json parse error: {exc}"
            ) from exc
    raise errors.unsupported_media_type(
        f"the body of the request was in an unknown format - accepted media types include: "
        f"application/json, application/yaml, {PROTOBUF}"
    )
