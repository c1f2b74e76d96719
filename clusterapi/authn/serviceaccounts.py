"""Service-account tokens: JWTs signed by the cluster's own key (TokenRequest).

``issue`` signs a token for a ServiceAccount (optionally bound to a Pod or Secret) with the
RS256 key in ``<data dir>/pki/sa.key``; ``authenticate`` verifies signature, issuer,
audience and validity window, then checks that the ServiceAccount (and the bound object)
still exists with the same uid, so deleting either revokes the token at once. The key's
public half is published as a JWKS (``/openid/v1/jwks``), as upstream's service-account
issuer discovery does; older public keys placed in ``pki/sa-keys/`` keep verifying after a
rotation.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import os
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.conf import settings

from clusterapi import store
from clusterapi.authn import AuthenticationError, User
from clusterapi.core.errors import ApiError
from clusterapi.resources import by_kind

DEFAULT_ISSUER = "https://kubernetes.default.svc.cluster.local"
MIN_EXPIRATION = 600
DEFAULT_EXPIRATION = 3600
MAX_EXPIRATION = 48 * 3600
_lock = threading.Lock()


def issuer() -> str:
    return os.environ.get("BERTH_SA_ISSUER", DEFAULT_ISSUER)


def _pki() -> Path:
    path = Path(settings.DATA_DIR) / "pki"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _kid(public_key: Any) -> str:
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()).decode().rstrip("=")


@dataclass(frozen=True)
class SigningKey:
    private_key: rsa.RSAPrivateKey
    kid: str


@functools.cache
def _signing_key_for(path: str, mtime: int) -> SigningKey:
    key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    return SigningKey(key, _kid(key.public_key()))


def signing_key() -> SigningKey:
    """The current signing key, generated on first use."""
    path = _pki() / "sa.key"
    with _lock:
        if not path.exists():
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            path.write_bytes(
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )
            path.chmod(0o600)
    return _signing_key_for(str(path), path.stat().st_mtime_ns)


def verification_keys() -> dict[str, Any]:
    """Public keys by kid: the current one and any kept from before a rotation."""
    current = signing_key()
    keys: dict[str, Any] = {current.kid: current.private_key.public_key()}
    older = _pki() / "sa-keys"
    if older.is_dir():
        for pem in sorted(older.glob("*.pem")):
            public = serialization.load_pem_public_key(pem.read_bytes())
            keys[_kid(public)] = public
    return keys


def jwks() -> dict[str, Any]:
    out = []
    for kid, public in verification_keys().items():
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(public))
        jwk.update({"kid": kid, "use": "sig", "alg": "RS256"})
        out.append(jwk)
    return {"keys": out}


def issue(
    namespace: str,
    service_account: store.objects.Obj,
    *,
    audiences: list[str] | None = None,
    expiration_seconds: int = DEFAULT_EXPIRATION,
    bound: store.objects.Obj | None = None,
) -> tuple[str, int]:
    """Sign a token; returns (token, expiry as a Unix time)."""
    expiration_seconds = max(MIN_EXPIRATION, min(expiration_seconds, MAX_EXPIRATION))
    now = int(time.time())
    meta = service_account["metadata"]
    private: dict[str, Any] = {
        "namespace": namespace,
        "serviceaccount": {"name": meta["name"], "uid": meta["uid"]},
    }
    if bound is not None:
        kind = str(bound.get("kind", "")).lower()
        private[kind] = {"name": bound["metadata"]["name"], "uid": bound["metadata"]["uid"]}
    claims = {
        "aud": audiences or [issuer()],
        "exp": now + expiration_seconds,
        "iat": now,
        "nbf": now,
        "iss": issuer(),
        "jti": str(uuid.uuid4()),
        "kubernetes.io": private,
        "sub": f"system:serviceaccount:{namespace}:{meta['name']}",
    }
    key = signing_key()
    token = jwt.encode(claims, key.private_key, algorithm="RS256", headers={"kid": key.kid})
    return token, now + expiration_seconds


def _exists(api_version: str, kind_name: str, namespace: str, name: str, uid: str) -> bool:
    kind = by_kind(api_version, kind_name)
    if kind is None:
        return False
    try:
        obj = store.get(kind, namespace, name)
    except ApiError:
        return False
    meta = obj["metadata"]
    return bool(meta.get("uid") == uid and not meta.get("deletionTimestamp"))


def claims_issuer(token: str) -> str | None:
    """The ``iss`` of an (unverified) JWT, to route it to the right authenticator."""
    try:
        payload = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    value = payload.get("iss")
    return value if isinstance(value, str) else None


def authenticate(token: str, audiences: list[str] | None = None) -> User:
    """Verify a service-account token; raises AuthenticationError when it is not valid."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise AuthenticationError(f"malformed token: {exc}") from exc
    if header.get("alg") != "RS256":
        raise AuthenticationError("unexpected signing algorithm")
    keys = verification_keys()
    candidates = [keys[header["kid"]]] if header.get("kid") in keys else []
    if header.get("kid") is None:
        candidates = list(keys.values())
    if not candidates:
        raise AuthenticationError("unknown signing key")
    claims: dict[str, Any] | None = None
    for key in candidates:
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=["RS256"],
                audience=audiences or [issuer()],
                issuer=issuer(),
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
            break
        except jwt.InvalidSignatureError:
            continue
        except jwt.PyJWTError as exc:
            raise AuthenticationError(str(exc)) from exc
    if claims is None:
        raise AuthenticationError("invalid signature")
    private = claims.get("kubernetes.io") or {}
    namespace = str(private.get("namespace", ""))
    account = private.get("serviceaccount") or {}
    if not _exists(
        "v1", "ServiceAccount", namespace, account.get("name", ""), account.get("uid", "")
    ):
        raise AuthenticationError("service account has been deleted")
    extra: dict[str, list[str]] = {
        "authentication.kubernetes.io/credential-id": [f"JTI={claims.get('jti', '')}"]
    }
    for kind_name in ("pod", "secret"):
        ref = private.get(kind_name)
        if ref:
            if not _exists(
                "v1", kind_name.capitalize(), namespace, ref.get("name", ""), ref.get("uid", "")
            ):
                raise AuthenticationError(f"bound {kind_name} has been deleted")
            extra[f"authentication.kubernetes.io/{kind_name}-name"] = [ref.get("name", "")]
            extra[f"authentication.kubernetes.io/{kind_name}-uid"] = [ref.get("uid", "")]
    return User(
        name=f"system:serviceaccount:{namespace}:{account.get('name', '')}",
        uid=str(account.get("uid", "")),
        groups=("system:serviceaccounts", f"system:serviceaccounts:{namespace}"),
        extra=extra,
    ).with_authenticated()
