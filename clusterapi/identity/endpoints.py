"""The issuer's machine endpoints: discovery, JWKS, token, userinfo, revocation, device code.

Clients call these without a browser session, so they are exempt from CSRF (they
authenticate as clients or with bearer tokens instead), and their answers are never cached.
"""

from __future__ import annotations

from typing import Any

from authlib.integrations.django_oauth2 import ResourceProtector
from authlib.integrations.django_oauth2.resource_protector import return_error_response
from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6750 import BearerTokenValidator
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from clusterapi.identity import claims, clients, keys
from clusterapi.identity import config as identity_config
from clusterapi.identity.models import Token, digest
from clusterapi.identity.server import DEVICE_GRANT, server

CLAIMS_SUPPORTED = [
    "iss",
    "sub",
    "aud",
    "azp",
    "exp",
    "iat",
    "auth_time",
    "nonce",
    "at_hash",
    "email",
    "email_verified",
    "name",
    "preferred_username",
    "groups",
]


@require_GET
def discovery(request: HttpRequest) -> JsonResponse:
    """``/.well-known/openid-configuration``."""
    issuer = identity_config.get().issuer
    return JsonResponse(
        {
            "issuer": issuer,
            "authorization_endpoint": f"{issuer}/auth",
            "token_endpoint": f"{issuer}/token",
            "jwks_uri": f"{issuer}/keys",
            "userinfo_endpoint": f"{issuer}/userinfo",
            "device_authorization_endpoint": f"{issuer}/device/code",
            "revocation_endpoint": f"{issuer}/token/revoke",
            "end_session_endpoint": f"{issuer}/logout",
            "grant_types_supported": ["authorization_code", "refresh_token", DEVICE_GRANT],
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": [keys.ALGORITHM],
            "code_challenge_methods_supported": ["S256"],
            "scopes_supported": list(clients.SCOPES),
            "token_endpoint_auth_methods_supported": [
                "client_secret_basic",
                "client_secret_post",
                "none",
            ],
            "revocation_endpoint_auth_methods_supported": [
                "client_secret_basic",
                "client_secret_post",
                "none",
            ],
            "claims_supported": CLAIMS_SUPPORTED,
        }
    )


@require_GET
def jwks(request: HttpRequest) -> JsonResponse:
    """``/keys``: the signing key and the retired keys whose tokens may still be valid."""
    response = JsonResponse(keys.jwks())
    # Relying parties may cache the set briefly; rotation publishes the next key at once
    # and old keys stay published for a day, so a short cache never misses a key.
    response["Cache-Control"] = "max-age=60, public"
    return response


@csrf_exempt
@never_cache
@require_POST
def token(request: HttpRequest) -> HttpResponse:
    """``/token``: authorization_code (with PKCE), refresh_token and device_code grants."""
    response: HttpResponse = server().create_token_response(request)
    return response


@csrf_exempt
@never_cache
@require_POST
def revoke(request: HttpRequest) -> HttpResponse:
    """``/token/revoke`` (RFC 7009): 200 for known and unknown tokens alike."""
    response: HttpResponse = server().create_endpoint_response("revocation", request)
    return response


@csrf_exempt
@never_cache
@require_POST
def device_code(request: HttpRequest) -> HttpResponse:
    """``/device/code`` (RFC 8628 section 3.1): a device code and a user code for a CLI."""
    response: HttpResponse = server().create_endpoint_response("device_authorization", request)
    return response


class AccessTokenValidator(BearerTokenValidator):
    """Bearer access tokens of ``/userinfo``, looked up by digest."""

    def authenticate_token(self, token_string: str) -> Token | None:
        return (
            Token.objects.select_related("family")
            .filter(access_digest=digest(token_string))
            .first()
        )


protector = ResourceProtector()
protector.register_token_validator(AccessTokenValidator())


@csrf_exempt
@never_cache
@require_http_methods(["GET", "POST"])
def userinfo(request: HttpRequest) -> HttpResponse:
    """``/userinfo``: the claims of the access token's user, as its scopes allow."""
    try:
        access: Any = protector.acquire_token(request, ["openid"])
    except OAuth2Error as error:
        response: HttpResponse = return_error_response(error)
        return response
    return JsonResponse(claims.user_claims(access.get_user(), access.get_scope()))
