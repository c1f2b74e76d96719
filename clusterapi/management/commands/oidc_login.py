"""``manage.py oidc-login``: a kubectl exec credential plugin for the issuer (kubelogin-style).

kubectl runs it before a request (``users[].user.exec`` with apiVersion
``client.authentication.k8s.io/v1``; ``manage.py kubeconfig --oidc`` writes that entry) and
sends the ID token it prints as the bearer token. Each run::

    cached ID token still valid (with a margin) ─────────────────► ExecCredential on stdout
    else cached refresh token ── token endpoint (refresh_token) ─► cache, ExecCredential
         refused (revoked, user gone) ──┐
    else ── device flow (RFC 8628) ◄────┘ URL + user code on stderr; poll until approved
                                          ─► cache, ExecCredential

The cache is one JSON file per (issuer, client, scopes) under ``--cache-dir`` (default
``$BERTH_OIDC_CACHE_DIR``, else ``$XDG_CACHE_HOME/berth/oidc-login``, else
``~/.cache/berth/oidc-login``), written atomically with mode 0600 in a 0700 directory. stdout
carries only the ExecCredential; everything meant for the user goes to stderr, which kubectl
passes through. The module is named ``oidc_login``; ``oidc-login.py`` beside it gives the
command its documented name.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import jwt
from django.core.management.base import BaseCommand, CommandError, CommandParser

EXEC_API_VERSION = "client.authentication.k8s.io/v1"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
DEFAULT_CLIENT_ID = "kubectl"
DEFAULT_SCOPES = "openid email profile groups offline_access"
# A token this close to expiry is refreshed first, so it does not expire in flight.
EXPIRY_MARGIN_SECONDS = 5
HTTP_TIMEOUT_SECONDS = 15.0


class LoginError(Exception):
    """The issuer refused a grant (the message is the OAuth error and its description)."""


def default_cache_dir() -> Path:
    if configured := os.environ.get("BERTH_OIDC_CACHE_DIR"):
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "berth" / "oidc-login"


class TokenCache:
    """The tokens of one (issuer, client, scopes), in a private file."""

    def __init__(self, directory: Path, issuer: str, client_id: str, scopes: str) -> None:
        key = hashlib.sha256(f"{issuer}\n{client_id}\n{scopes}".encode()).hexdigest()[:32]
        self.directory = directory
        self.path = directory / f"{key}.json"

    def load(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def save(self, tokens: dict[str, Any]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        # mkstemp creates the file 0600; the rename makes the write atomic for a concurrent
        # kubectl reading the cache.
        fd, temp = tempfile.mkstemp(dir=self.directory, prefix=".tokens-")
        try:
            with os.fdopen(fd, "w") as out:
                json.dump(tokens, out)
            os.replace(temp, self.path)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


def token_expiry(id_token: str) -> int:
    """The ``exp`` of an ID token (read, not verified: the API server verifies it)."""
    try:
        claims = jwt.decode(id_token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return 0
    exp = claims.get("exp")
    return int(exp) if isinstance(exp, int | float) else 0


def exec_credential(id_token: str) -> dict[str, Any]:
    status: dict[str, Any] = {"token": id_token}
    if exp := token_expiry(id_token):
        moment = datetime.fromtimestamp(exp, tz=UTC)
        status["expirationTimestamp"] = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"apiVersion": EXEC_API_VERSION, "kind": "ExecCredential", "status": status}


class Issuer:
    """The few calls the plugin makes to the issuer."""

    def __init__(self, url: str, client_id: str, scopes: str, ca_file: str) -> None:
        self.url = url.rstrip("/")
        self.client_id = client_id
        self.scopes = scopes
        self.http = httpx.Client(verify=ca_file or True, timeout=HTTP_TIMEOUT_SECONDS)
        self._discovery: dict[str, Any] | None = None

    def discovery(self) -> dict[str, Any]:
        if self._discovery is None:
            response = self.http.get(self.url + "/.well-known/openid-configuration")
            response.raise_for_status()
            document: dict[str, Any] = response.json()
            if str(document.get("issuer", "")).rstrip("/") != self.url:
                raise CommandError(f"the discovery document is not {self.url}'s")
            self._discovery = document
        return self._discovery

    def _token(self, data: dict[str, str]) -> dict[str, Any]:
        response = self.http.post(
            str(self.discovery()["token_endpoint"]), data={**data, "client_id": self.client_id}
        )
        body: dict[str, Any] = response.json()
        if response.status_code != 200:
            raise LoginError(f"{body.get('error')}: {body.get('error_description', '')}")
        if not body.get("id_token"):
            raise LoginError("the token response has no id_token")
        return body

    def refresh(self, refresh_token: str) -> dict[str, Any]:
        return self._token({"grant_type": "refresh_token", "refresh_token": refresh_token})

    def device_login(self, say: Any) -> dict[str, Any]:
        endpoint = self.discovery().get("device_authorization_endpoint")
        if not endpoint:
            raise CommandError(f"{self.url} does not offer the device flow")
        response = self.http.post(
            str(endpoint), data={"client_id": self.client_id, "scope": self.scopes}
        )
        response.raise_for_status()
        start: dict[str, Any] = response.json()
        say(
            f"To log in to {self.url}, open {start['verification_uri']} "
            f"and enter the code {start['user_code']}"
        )
        if complete := start.get("verification_uri_complete"):
            say(f"(or open {complete})")
        interval = float(start.get("interval", 5))
        deadline = time.monotonic() + float(start.get("expires_in", 300))
        while time.monotonic() < deadline:
            time.sleep(interval)
            try:
                return self._token(
                    {"grant_type": DEVICE_GRANT, "device_code": str(start["device_code"])}
                )
            except LoginError as exc:
                error = str(exc).split(":", 1)[0]
                if error == "authorization_pending":
                    continue
                if error == "slow_down":
                    interval += 5  # RFC 8628 section 3.5
                    continue
                raise
        raise LoginError("expired_token: the code was not approved in time")


class Command(BaseCommand):
    help = "kubectl exec credential plugin: log in to the OIDC issuer and print an ID token."
    requires_system_checks: list[str] = []  # runs on every kubectl call: start fast

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--issuer", default="", help="issuer URL (default: this instance's)")
        parser.add_argument("--client-id", default=DEFAULT_CLIENT_ID)
        parser.add_argument("--scopes", default=DEFAULT_SCOPES)
        parser.add_argument(
            "--ca-file", default="", help="CA bundle for the issuer (default: this instance's CA)"
        )
        parser.add_argument("--cache-dir", default="", help="token cache directory")

    def handle(self, *args: Any, **options: Any) -> None:
        issuer_url: str = options["issuer"] or self._instance_issuer()
        ca_file: str = options["ca_file"] or self._instance_ca()
        cache_dir = Path(options["cache_dir"]) if options["cache_dir"] else default_cache_dir()
        issuer = Issuer(issuer_url, options["client_id"], options["scopes"], ca_file)
        cache = TokenCache(cache_dir, issuer.url, issuer.client_id, issuer.scopes)
        try:
            id_token = self._id_token(issuer, cache)
        except (LoginError, httpx.HTTPError) as exc:
            raise CommandError(f"oidc-login: {exc}") from exc
        self.stdout.write(json.dumps(exec_credential(id_token)))

    def _say(self, message: str) -> None:
        sys.stderr.write(message + "\n")
        sys.stderr.flush()

    def _id_token(self, issuer: Issuer, cache: TokenCache) -> str:
        cached = cache.load()
        id_token = str(cached.get("id_token", ""))
        if id_token and token_expiry(id_token) > time.time() + EXPIRY_MARGIN_SECONDS:
            return id_token
        if refresh_token := cached.get("refresh_token"):
            try:
                tokens = issuer.refresh(str(refresh_token))
            except LoginError as exc:
                # Revoked, replayed or the user is gone: log in again.
                self._say(f"The saved login cannot be refreshed ({exc}); logging in again.")
                cache.clear()
            else:
                return self._keep(cache, tokens, str(refresh_token))
        return self._keep(cache, issuer.device_login(self._say), "")

    def _keep(self, cache: TokenCache, tokens: dict[str, Any], old_refresh: str) -> str:
        id_token = str(tokens["id_token"])
        cache.save(
            {"id_token": id_token, "refresh_token": tokens.get("refresh_token") or old_refresh}
        )
        return id_token

    def _instance_issuer(self) -> str:
        from clusterapi.identity import config as identity_config

        return identity_config.get().issuer

    def _instance_ca(self) -> str:
        from django.conf import settings

        ca = Path(settings.DATA_DIR) / "pki" / "ca.crt"
        return str(ca) if ca.exists() else ""
