"""The authlib authorization server and the grants, wired to Berth's models and connectors.

authlib does the protocol: request validation, client authentication, PKCE comparison,
error responses, the device-flow state machine, RFC 7009 and RP-initiated logout checks.
What is ours sits in the hooks it leaves open: where codes and tokens live (hashed, in
``models``), refresh-token rotation with family revocation on replay, asking the connector
again on every refresh, and the ID token's claims and signing key.
"""

from __future__ import annotations

import functools
import time
from datetime import timedelta
from typing import Any

from authlib.common.security import generate_token
from authlib.integrations.django_oauth2 import AuthorizationServer
from authlib.integrations.django_oauth2 import RevocationEndpoint as DjangoRevocationEndpoint
from authlib.oauth2.rfc6749 import InvalidGrantError, InvalidRequestError, grants
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc8628 import DeviceAuthorizationEndpoint, DeviceCodeGrant
from authlib.oidc.core.grants import OpenIDCode
from authlib.oidc.core.util import create_half_hash
from authlib.oidc.rpinitiated import EndSessionEndpoint, EndSessionRequest
from django.utils import timezone
from joserfc import jwt

from clusterapi.identity import claims, clients, connectors, keys
from clusterapi.identity import config as identity_config
from clusterapi.identity.connectors.base import ConnectorError, Identity
from clusterapi.identity.models import AuthorizationCode, DeviceRequest, Token, TokenFamily, digest

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
ALL_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]


def _config() -> identity_config.IdentityConfig:
    return identity_config.get()


# --- ID tokens --------------------------------------------------------------------------------


class IDToken(OpenIDCode):
    """Adds the RS256 ``id_token`` to token responses of every grant with the openid scope."""

    def exists_nonce(self, nonce: str, request: Any) -> bool:
        return False  # a nonce is the client's; codes are single use, which stops replays

    def generate_user_info(self, user: Identity, scope: str) -> dict[str, Any]:
        return claims.user_claims(user, scope)

    def encode_id_token(self, token: dict[str, Any], request: Any) -> str:
        config = _config()
        client_id = request.client.get_client_id()
        now = int(time.time())
        payload: dict[str, Any] = {
            "iss": config.issuer,
            "aud": client_id,
            "azp": client_id,
            "iat": now,
            "exp": now + int(config.expiry.id_tokens.total_seconds()),
        }
        code = request.authorization_code
        if code is not None:
            if code.get_nonce():
                payload["nonce"] = code.get_nonce()
            payload["auth_time"] = code.get_auth_time()
        if access_token := token.get("access_token"):
            payload["at_hash"] = create_half_hash(access_token, keys.ALGORITHM).decode()
        payload.update(self.generate_user_info(request.user, token["scope"]))
        key = keys.signing_key()
        header = {"alg": keys.ALGORITHM, "kid": key.kid}
        return jwt.encode(header, payload, key, algorithms=[keys.ALGORITHM])


# --- authorization code + PKCE ----------------------------------------------------------------


class PKCE(CodeChallenge):
    """S256 only; required for public clients, accepted from confidential ones.

    A missing or wrong verifier is ``invalid_grant`` (RFC 7636 section 4.6).
    """

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]
    DEFAULT_CODE_CHALLENGE_METHOD = "S256"

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if data.get("code_challenge") and data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("code_challenge_method must be S256")
        if grant.request.client.public and not data.get("code_challenge"):
            raise InvalidRequestError("PKCE (code_challenge with S256) is required")
        super().validate_code_challenge(grant, redirect_uri)

    def validate_code_verifier(self, grant: Any, result: Any) -> None:
        try:
            super().validate_code_verifier(grant, result)
        except InvalidRequestError as exc:
            raise InvalidGrantError(exc.description) from exc


class CodeGrant(grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ALL_AUTH_METHODS

    def save_authorization_code(self, code: str, request: Any) -> None:
        data = request.payload.data
        AuthorizationCode.objects.create(
            code_digest=digest(code),
            client_id=request.client.get_client_id(),
            redirect_uri=request.payload.redirect_uri or "",
            scope=request.scope or "",
            identity=request.user.to_dict(),
            nonce=data.get("nonce") or "",
            code_challenge=data.get("code_challenge") or "",
            code_challenge_method=data.get("code_challenge_method") or "",
            auth_time=int(getattr(request, "auth_time", 0) or time.time()),
            expires=timezone.now() + _config().expiry.auth_codes,
        )

    def query_authorization_code(self, code: str, client: Any) -> AuthorizationCode | None:
        found = AuthorizationCode.objects.filter(
            code_digest=digest(code), client_id=client.get_client_id()
        ).first()
        if found is None or found.is_expired():
            return None
        # Claim the code atomically: of two redemptions only one gets it, and any later one
        # revokes what the first was given (RFC 6749 section 4.1.2).
        claimed = AuthorizationCode.objects.filter(pk=found.pk, used=False).update(used=True)
        if not claimed:
            for family in TokenFamily.objects.filter(code_digest=found.code_digest):
                family.revoke("authorization code used twice")
            return None
        return found

    def delete_authorization_code(self, authorization_code: AuthorizationCode) -> None:
        """Already marked used when claimed; kept to recognise a second use."""

    def authenticate_user(self, authorization_code: AuthorizationCode) -> Identity:
        return authorization_code.get_identity()


# --- refresh tokens: rotation and reuse detection ---------------------------------------------


def _refresh_identity(identity: Identity) -> Identity | None:
    """Ask the user's connector again: None when the user is gone or disabled."""
    connector = connectors.enabled(_config()).get(identity.connector_id)
    if connector is None:
        return None
    try:
        return connector.refresh(identity)
    except ConnectorError as exc:
        raise InvalidGrantError(f"cannot check the user: {exc}") from exc


class RefreshGrant(grants.RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ALL_AUTH_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True

    def authenticate_refresh_token(self, refresh_token: str) -> Token | None:
        token = (
            Token.objects.select_related("family")
            .filter(refresh_digest=digest(refresh_token))
            .first()
        )
        if token is None or token.is_revoked():
            return None
        family = token.family
        lifetimes = _config().expiry.refresh_tokens
        now = timezone.now()
        if family.created + lifetimes.absolute_lifetime <= now:
            family.revoke("absolute lifetime reached")
            return None
        if family.last_used + lifetimes.valid_if_not_used_for <= now:
            family.revoke("not used for too long")
            return None
        # Rotation: each refresh token is exchanged once. The claim is atomic, so two
        # concurrent uses cannot both rotate it.
        if Token.objects.filter(pk=token.pk, rotated__isnull=True).update(rotated=now):
            return token
        token.refresh_from_db()
        if token.rotated is not None and now - token.rotated <= lifetimes.reuse_interval:
            return token  # a client retrying within the grace period (dex's reuseInterval)
        family.revoke("refresh token reused")
        return None

    def authenticate_user(self, refresh_token: Token) -> Identity:
        family = refresh_token.family
        identity = _refresh_identity(family.get_identity())
        if identity is None:
            family.revoke("user no longer valid")
            raise InvalidGrantError("the user can no longer log in")
        family.identity = identity.to_dict()
        family.last_used = timezone.now()
        family.save(update_fields=["identity", "last_used"])
        return identity

    def revoke_old_credential(self, refresh_token: Token) -> None:
        """Rotation already marked it when it was claimed."""


# --- device authorization grant ---------------------------------------------------------------


class DeviceEndpoint(DeviceAuthorizationEndpoint):
    CLIENT_AUTH_METHODS = ALL_AUTH_METHODS

    @property
    def EXPIRES_IN(self) -> int:  # authlib reads this class attribute; here it follows the config
        return int(_config().expiry.device_requests.total_seconds())

    def get_verification_uri(self) -> str:
        return _config().issuer + "/device"

    def save_device_credential(self, client_id: str, scope: str, data: dict[str, Any]) -> None:
        client = clients.get(client_id)
        DeviceRequest.objects.create(
            client_id=client_id,
            scope=client.get_allowed_scope(scope) if client is not None else "",
            device_code_digest=digest(data["device_code"]),
            user_code=data["user_code"],
            expires=timezone.now() + timedelta(seconds=data["expires_in"]),
            interval=data["interval"],
        )


class DeviceGrant(DeviceCodeGrant):
    def query_device_credential(self, device_code: str) -> DeviceRequest | None:
        return DeviceRequest.objects.filter(
            device_code_digest=digest(device_code), consumed=False
        ).first()

    def query_user_grant(self, user_code: str) -> tuple[Identity | None, bool] | None:
        found = DeviceRequest.objects.filter(user_code=user_code).first()
        if found is None or found.status == DeviceRequest.PENDING:
            return None
        if found.status == DeviceRequest.DENIED or not found.identity:
            return None, False
        return found.get_identity(), True

    def should_slow_down(self, credential: DeviceRequest) -> bool:
        now = timezone.now()
        too_soon = credential.last_poll is not None and now - credential.last_poll < timedelta(
            seconds=credential.interval
        )
        if too_soon:
            credential.interval += 5  # RFC 8628 section 3.5: for this and later requests
        credential.last_poll = now
        credential.save(update_fields=["interval", "last_poll"])
        return too_soon

    def validate_device_credential(self, credential: DeviceRequest) -> Identity:
        user: Identity = super().validate_device_credential(credential)
        # One set of tokens per device code, even when two polls race.
        if not DeviceRequest.objects.filter(pk=credential.pk, consumed=False).update(consumed=True):
            raise InvalidGrantError("the device code was already used")
        return user


# --- revocation and logout --------------------------------------------------------------------


class Revocation(DjangoRevocationEndpoint):
    """RFC 7009: revoking a refresh token revokes its whole family; an access token, itself."""

    CLIENT_AUTH_METHODS = ALL_AUTH_METHODS

    def query_token(self, token_string: str, token_type_hint: str | None) -> Token | None:
        hashed = digest(token_string)
        tokens = Token.objects.select_related("family")
        return (
            tokens.filter(refresh_digest=hashed).first()
            or tokens.filter(access_digest=hashed).first()
        )

    def revoke_token(self, token: Token, request: Any) -> None:
        if token.refresh_digest == digest(request.form["token"]):
            token.family.revoke("revoked by the client")
        else:
            token.revoked = True
            token.save(update_fields=["revoked"])


class EndSession(EndSessionEndpoint):
    """RP-initiated logout; the view ends the issuer session (it holds the Django request)."""

    def get_server_jwks(self) -> dict[str, Any]:
        return keys.jwks()

    def get_algorithms(self) -> list[str]:
        return [keys.ALGORITHM]

    def end_session(self, end_session_request: EndSessionRequest) -> None:
        """Nothing here: ``views.logout`` clears the session before calling the endpoint."""


# --- the server -------------------------------------------------------------------------------


class IssuerServer(AuthorizationServer):
    def __init__(self) -> None:
        super().__init__(client_model=None, token_model=Token)
        self.scopes_supported = list(clients.SCOPES)
        self.register_token_generator("default", self.generate_bearer_token)

    def query_client(self, client_id: str) -> clients.OAuthClient | None:
        return clients.get(client_id)

    def generate_bearer_token(
        self,
        grant_type: str,
        client: Any,
        user: Any = None,
        scope: str | None = None,
        expires_in: int | None = None,
        include_refresh_token: bool = True,
    ) -> dict[str, Any]:
        token: dict[str, Any] = {
            "token_type": "Bearer",
            "access_token": generate_token(42),
            "expires_in": expires_in or int(_config().expiry.id_tokens.total_seconds()),
            "scope": scope or "",
        }
        # As dex: a refresh token only for the offline_access scope.
        if include_refresh_token and "offline_access" in (scope or "").split():
            token["refresh_token"] = generate_token(48)
        return token

    def save_token(self, token: dict[str, Any], request: Any) -> Token:
        family: TokenFamily
        if request.refresh_token is not None:
            family = request.refresh_token.family
        else:
            code = request.authorization_code
            family = TokenFamily.objects.create(
                client_id=request.client.get_client_id(),
                scope=token.get("scope", ""),
                identity=request.user.to_dict(),
                code_digest=code.code_digest if code is not None else "",
            )
        refresh = token.get("refresh_token")
        return Token.objects.create(
            family=family,
            access_digest=digest(token["access_token"]),
            refresh_digest=digest(refresh) if refresh else None,
            expires_in=int(token["expires_in"]),
        )

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        """No Django signals: nothing listens to them."""


@functools.cache
def server() -> IssuerServer:
    """The process's authorization server (built on first use, after settings are ready)."""
    issuer = IssuerServer()
    issuer.register_grant(CodeGrant, [PKCE(required=True), IDToken()])
    issuer.register_grant(RefreshGrant, [IDToken()])
    issuer.register_grant(DeviceGrant, [IDToken()])
    issuer.register_endpoint(DeviceEndpoint)
    issuer.register_endpoint(Revocation)
    issuer.register_endpoint(EndSession)
    return issuer
