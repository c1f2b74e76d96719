"""Node credentials: how a node agent holding a bootstrap token becomes ``system:node:<name>``.

Design
------
Upstream's kubelet TLS bootstrap has the bootstrap identity (``system:bootstrap:<id>`` in
``system:bootstrappers``) create a CertificateSigningRequest for ``system:node:<name>``, which
the csrapproving controller approves automatically for that group. Berth keeps the same trust
model with fewer moving parts: one create-only endpoint,

``POST /apis/node.berth.dev/v1/nodecredentials`` with body
``{"apiVersion": "node.berth.dev/v1", "kind": "NodeCredentialRequest",
"spec": {"nodeNames": ["a", "b"], "expirationSeconds": 31536000}}``

answers 201 with ``status.credentials: [{"nodeName", "token", "expirationTimestamp"}]``: one
bearer token per node (``clusterapi.authn.tokens``, stored as a digest only) for the user
``system:node:<name>`` in the group ``system:nodes``, which the Node authorizer and
NodeRestriction then confine to that node's objects.

* Authorization is ordinary RBAC: verb ``create`` on ``nodecredentials`` in the API group
  ``node.berth.dev``, granted to the group ``system:bootstrappers`` by the ClusterRole
  ``system:berth:node-bootstrapper`` (``clusterapi/rbac/bootstrap-policy.yaml``), exactly as
  upstream's ``system:node-bootstrapper`` grants CSR creation. Revoking the bootstrap token
  (``manage.py token delete``) stops new joins; issued node tokens stay valid until they
  expire (one year by default, upstream's client certificate lifetime) or are revoked.
* A request for a node that already has a credential replaces it (the old token is deleted),
  so agent restarts do not pile up tokens. As upstream (auto-approval of ``nodeclient``
  CSRs), any holder of a bootstrap token may obtain a credential for any node name: the
  bootstrap token is the secret that admits machines to the cluster.
* Up to ``MAX_NODES`` names per request, so 1,000 simulated nodes join in one round trip.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from clusterapi.admission.names import is_dns1123_subdomain
from clusterapi.api import negotiation
from clusterapi.api.status import json_response
from clusterapi.authn import tokens
from clusterapi.core.errors import bad_request, method_not_allowed
from clusterapi.core.models import ApiToken

API_GROUP = "node.berth.dev"
API_VERSION = f"{API_GROUP}/v1"
KIND = "NodeCredentialRequest"
NODES_GROUP = "system:nodes"
NODE_USER_PREFIX = "system:node:"
DESCRIPTION_PREFIX = "node credential"
DEFAULT_EXPIRATION = 365 * 24 * 3600
MIN_EXPIRATION = 600
MAX_NODES = 1000


def issue_credentials(
    node_names: list[str], requester: str, expiration_seconds: int = DEFAULT_EXPIRATION
) -> list[dict[str, Any]]:
    """Issue (replacing earlier ones) one node token per name; returns the credentials."""
    ttl = timedelta(seconds=expiration_seconds)
    expires_at = timezone.now() + ttl
    expires = expires_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    out: list[dict[str, Any]] = []
    rows: list[ApiToken] = []
    users = [NODE_USER_PREFIX + name for name in node_names]
    for name, user in zip(node_names, users, strict=True):
        # As ``tokens.create``, in bulk: 1,000 nodes join in one short transaction.
        token = tokens.PREFIX + secrets.token_urlsafe(32)
        rows.append(
            ApiToken(
                digest=tokens.digest(token),
                username=user,
                uid=hashlib.sha256(user.encode()).hexdigest()[:16],
                groups=[NODES_GROUP],
                description=f"{DESCRIPTION_PREFIX} for {name}, requested by {requester}"[:255],
                expires=expires_at,
            )
        )
        out.append({"nodeName": name, "token": token, "expirationTimestamp": expires})
    with transaction.atomic():
        ApiToken.objects.filter(
            username__in=users, description__startswith=DESCRIPTION_PREFIX
        ).delete()
        ApiToken.objects.bulk_create(rows)
    return out


def _node_names(spec: dict[str, Any]) -> list[str]:
    names = spec.get("nodeNames")
    if not isinstance(names, list) or not names:
        raise bad_request("spec.nodeNames: Required value: at least one node name")
    if len(names) > MAX_NODES:
        raise bad_request(f"spec.nodeNames: Too many: {len(names)}: must have at most {MAX_NODES}")
    seen: set[str] = set()
    for name in names:
        if not isinstance(name, str):
            raise bad_request("spec.nodeNames: Invalid value: node names must be strings")
        problems = is_dns1123_subdomain(name)
        if problems:
            raise bad_request(f'spec.nodeNames: Invalid value: "{name}": {"; ".join(problems)}')
        if name in seen:
            raise bad_request(f'spec.nodeNames: Duplicate value: "{name}"')
        seen.add(name)
    return list(names)


def create(request: HttpRequest) -> HttpResponse:
    """``POST /apis/node.berth.dev/v1/nodecredentials`` (authorized by RBAC beforehand)."""
    if request.method != "POST":
        raise method_not_allowed()
    body = negotiation.decode_body(request)
    if not isinstance(body, dict) or body.get("kind", KIND) != KIND:
        raise bad_request(f"the body of the request must be a {KIND} object")
    spec = body.get("spec") or {}
    if not isinstance(spec, dict):
        raise bad_request("spec must be an object")
    names = _node_names(spec)
    expiration = int(spec.get("expirationSeconds") or DEFAULT_EXPIRATION)
    if expiration < MIN_EXPIRATION:
        raise bad_request(
            f"spec.expirationSeconds: Invalid value: {expiration}: "
            "may not specify a duration less than 10 minutes"
        )
    user = getattr(request, "berth_user", None)
    requester = user.name if user is not None else "unknown"
    credentials = issue_credentials(names, requester, expiration)
    return json_response(
        {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "metadata": {"creationTimestamp": None},
            "spec": {"nodeNames": names, "expirationSeconds": expiration},
            "status": {"credentials": credentials},
        },
        status=201,
    )
