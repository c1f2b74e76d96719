"""Bearer-token authentication against a live Berth: every bad token is a 401 and nothing else.

The module's server trusts one external OIDC issuer (``BERTH_CONFIG``): a small discovery and
JWKS server this module runs on 127.0.0.1 (plain http), whose RSA keys the tests generate
with ``cryptography`` and sign with. It also reads a static token file (``BERTH_TOKEN_FILE``).

Shown here:

* the bad tokens of issue 3 — ``alg: none``, HS256 signed with the public key, expired, not
  yet valid, wrong issuer, wrong audience, unknown ``kid``, tampered payload, a missing
  required claim, the token of a deleted service account (and of a deleted bound pod), an
  expired bootstrap token — each answered ``401`` with upstream's bare ``Unauthorized``
  Status, on resource paths and on the public ones alike (no fall-through to anonymous);
* a valid OIDC token accepted with the username and groups prefixes applied, and a
  RoleBinding to the OIDC group taking effect;
* a rotated issuer key picked up without a restart, within ``oidc.REFRESH_SECONDS`` and
  without fetching the JWKS more often than that;
* ``manage.py token create|list|delete`` and ``manage.py kubeconfig --user --group``, and the
  static token file re-read when it changes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from clusterapi.authn import oidc
from tests.live import ROOT, Kubectl, LiveServer

pytestmark = pytest.mark.e2e

Obj = dict[str, Any]
AUDIENCE = "berth-e2e"
PREFIX = "oidc:"
SA_ISSUER = "https://kubernetes.default.svc.cluster.local"
OIDC_NS = "oidc-team"
UNAUTHORIZED = {
    "kind": "Status",
    "apiVersion": "v1",
    "metadata": {},
    "status": "Failure",
    "message": "Unauthorized",
    "reason": "Unauthorized",
    "code": 401,
}
STATIC_TOKEN = secrets.token_hex(16)


# --- the test issuer ----------------------------------------------------------------------


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _jwk(key: rsa.RSAPrivateKey, kid: str) -> Obj:
    entry: Obj = jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    entry.update({"kid": kid, "use": "sig", "alg": "RS256"})
    return entry


@dataclass
class TestIssuer:
    """An OIDC issuer on 127.0.0.1: discovery, a JWKS it can rotate, and a fetch log."""

    __test__ = False  # not a test class, despite the name

    keys: dict[str, rsa.RSAPrivateKey] = field(default_factory=dict)
    published: list[str] = field(default_factory=list)
    jwks_fetches: list[float] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def add_key(self, kid: str) -> rsa.RSAPrivateKey:
        self.keys[kid] = _new_key()
        return self.keys[kid]

    def publish(self, *kids: str) -> None:
        """Serve exactly these keys from now on."""
        self.published = list(kids)

    def start(self) -> TestIssuer:
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/.well-known/openid-configuration":
                    body: Obj = {
                        "issuer": issuer.url,
                        "jwks_uri": issuer.url + "/keys",
                        "id_token_signing_alg_values_supported": ["RS256"],
                        "response_types_supported": ["id_token"],
                        "subject_types_supported": ["public"],
                    }
                elif self.path == "/keys":
                    issuer.jwks_fetches.append(time.monotonic())
                    body = {"keys": [_jwk(issuer.keys[k], k) for k in issuer.published]}
                else:
                    self.send_error(404)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def claims(self, **overrides: Any) -> Obj:
        """Valid ID-token claims for olivia, changed by ``overrides`` (None removes one)."""
        now = int(time.time())
        claims: Obj = {
            "iss": self.url,
            "aud": AUDIENCE,
            "sub": "u-1001",
            "email": "olivia@example.com",
            "email_verified": True,
            "groups": ["devs", "qa"],
            "hd": "example.com",
            "iat": now - 5,
            "nbf": now - 5,
            "exp": now + 600,
        }
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def sign(self, kid: str = "k1", **overrides: Any) -> str:
        return jwt.encode(
            self.claims(**overrides), self.keys[kid], algorithm="RS256", headers={"kid": kid}
        )


# --- token surgery ------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _segment(obj: Obj) -> str:
    return _b64(json.dumps(obj, separators=(",", ":")).encode())


def unsigned_token(claims: Obj, kid: str = "k1") -> str:
    """``alg: none``: no signature at all."""
    return f"{_segment({'alg': 'none', 'typ': 'JWT', 'kid': kid})}.{_segment(claims)}."


def hs256_with_public_key(claims: Obj, public_key: rsa.RSAPublicKey, kid: str) -> str:
    """The algorithm-confusion attack: HMAC-SHA256 keyed with the PEM of the RSA public key."""
    pem = public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signing_input = f"{_segment({'alg': 'HS256', 'typ': 'JWT', 'kid': kid})}.{_segment(claims)}"
    signature = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def tampered(token: str, **changes: Any) -> str:
    """The token with its payload changed and its original signature kept."""
    header, payload, signature = token.split(".")
    claims = json.loads(_unb64(payload))
    claims.update(changes)
    return f"{header}.{_segment(claims)}.{signature}"


# --- fixtures -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def issuer() -> Iterator[TestIssuer]:
    test_issuer = TestIssuer().start()
    test_issuer.add_key("k1")
    test_issuer.add_key("k2")  # published only after the rotation
    test_issuer.add_key("rogue")  # never published
    test_issuer.publish("k1")
    try:
        yield test_issuer
    finally:
        test_issuer.stop()


@pytest.fixture(scope="module")
def token_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tokens") / "tokens.csv"
    path.write_text(f'{STATIC_TOKEN},stella,uid-stella,"static-ops"\n')
    return path


@pytest.fixture(scope="module")
def live_server_berth(
    issuer: TestIssuer, token_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """This module's server: trusts the test issuer and reads the static token file."""
    config = tmp_path_factory.mktemp("config") / "berth.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "authentication": {
                    "oidc": [
                        {
                            "issuer": issuer.url,
                            "audiences": [AUDIENCE],
                            "usernameClaim": "email",
                            "usernamePrefix": PREFIX,
                            "groupsClaim": "groups",
                            "groupsPrefix": PREFIX,
                            "requiredClaims": {"hd": "example.com"},
                        }
                    ]
                }
            }
        )
    )
    env = {"BERTH_CONFIG": str(config), "BERTH_TOKEN_FILE": str(token_file)}
    server = LiveServer(tmp_path_factory.mktemp("berth"), env=env).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def api(live_server_berth: LiveServer) -> Iterator[httpx.Client]:
    context = ssl.create_default_context(cafile=str(live_server_berth.ca_file))
    with httpx.Client(base_url=live_server_berth.url, verify=context, timeout=30) as client:
        yield client


def whoami(api: httpx.Client, token: str) -> httpx.Response:
    """``kubectl auth whoami`` over HTTP: a SelfSubjectReview with the token."""
    review = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
    return api.post(
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        json=review,
        headers={"Authorization": f"Bearer {token}"},
    )


def user_of(api: httpx.Client, token: str) -> Obj:
    response = whoami(api, token)
    assert response.status_code == 201, response.text
    info: Obj = response.json()["status"]["userInfo"]
    return info


# Resource and non-resource paths: a bad token is refused on every one of them.
PROBES = (
    ("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews"),
    ("GET", "/api/v1/namespaces/default/configmaps"),
    ("GET", "/api/v1/namespaces/default/configmaps?watch=1&timeoutSeconds=1"),
    ("GET", "/api"),
    ("GET", "/version"),
    ("GET", "/healthz"),
    ("GET", "/metrics"),
)


def assert_rejected(api: httpx.Client, token: str) -> None:
    """401 with the bare Unauthorized Status, wherever the token is presented."""
    for method, path in PROBES:
        body = (
            {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
            if method == "POST"
            else None
        )
        response = api.request(
            method, path, json=body, headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code == 401, f"{method} {path}: {response.text}"
        assert response.json() == UNAUTHORIZED, f"{method} {path}"


# --- OIDC -----------------------------------------------------------------------------------


def test_valid_oidc_token_gets_prefixed_username_and_groups(
    api: httpx.Client, issuer: TestIssuer
) -> None:
    info = user_of(api, issuer.sign())
    assert info["username"] == "oidc:olivia@example.com"
    assert info["uid"] == "u-1001"
    assert info["groups"] == ["oidc:devs", "oidc:qa", "system:authenticated"]


def test_role_binding_to_an_oidc_group_takes_effect(
    live_server_berth: LiveServer, kubectl: Kubectl, issuer: TestIssuer
) -> None:
    olivia = Kubectl(live_server_berth.token_kubeconfig("olivia", issuer.sign()), kubectl.cache_dir)
    denied = olivia.run("get", "configmaps", "-n", "default", check=False)
    assert denied.returncode != 0
    assert denied.stderr.strip() == (
        'Error from server (Forbidden): configmaps is forbidden: User "oidc:olivia@example.com" '
        'cannot list resource "configmaps" in API group "" in the namespace "default"'
    )
    kubectl("create", "namespace", OIDC_NS)
    kubectl(
        "create", "rolebinding", "devs-view", "--clusterrole=view", "--group=oidc:devs",
        "-n", OIDC_NS,
    )  # fmt: skip
    kubectl("create", "configmap", "settings", "--from-literal=a=b", "-n", OIDC_NS)
    assert "settings" in olivia("get", "configmaps", "-n", OIDC_NS, "-o", "name")
    # The binding names the prefixed group: a token without that group is not covered.
    outsider = issuer.sign(groups=["qa"])
    olivia_qa = Kubectl(
        live_server_berth.token_kubeconfig("olivia-qa", outsider), kubectl.cache_dir
    )
    assert olivia_qa.run("get", "configmaps", "-n", OIDC_NS, check=False).returncode != 0
    assert olivia("auth", "can-i", "list", "pods", "-n", OIDC_NS).strip() == "yes"


def _bad_oidc_tokens(issuer: TestIssuer) -> dict[str, str]:
    now = int(time.time())
    good = issuer.sign()
    public = issuer.keys["k1"].public_key()
    return {
        "alg none": unsigned_token(issuer.claims()),
        "alg none without kid": unsigned_token(issuer.claims(), kid=""),
        "HS256 signed with the issuer's public key": hs256_with_public_key(
            issuer.claims(), public, "k1"
        ),
        "expired": issuer.sign(exp=now - 120, iat=now - 720, nbf=now - 720),
        "not yet valid (nbf)": issuer.sign(nbf=now + 3600, iat=now, exp=now + 7200),
        "not yet valid (iat)": issuer.sign(iat=now + 3600, nbf=None, exp=now + 7200),
        "wrong issuer": issuer.sign(iss=issuer.url + "/elsewhere"),
        "wrong audience": issuer.sign(aud="someone-else"),
        "no expiry": issuer.sign(exp=None),
        "unknown kid": jwt.encode(
            issuer.claims(), issuer.keys["rogue"], algorithm="RS256", headers={"kid": "rogue"}
        ),
        "known kid, another key's signature": jwt.encode(
            issuer.claims(), issuer.keys["rogue"], algorithm="RS256", headers={"kid": "k1"}
        ),
        "tampered payload (email)": tampered(good, email="admin@example.com"),
        "tampered payload (groups)": tampered(good, groups=["system:masters"]),
        "missing required claim": issuer.sign(hd=None),
        "wrong required claim": issuer.sign(hd="evil.example"),
        "truncated signature": good[:-10],
        "garbage": "not-a-token",
    }


BAD_OIDC_CASES = [
    "alg none",
    "alg none without kid",
    "HS256 signed with the issuer's public key",
    "expired",
    "not yet valid (nbf)",
    "not yet valid (iat)",
    "wrong issuer",
    "wrong audience",
    "no expiry",
    "unknown kid",
    "known kid, another key's signature",
    "tampered payload (email)",
    "tampered payload (groups)",
    "missing required claim",
    "wrong required claim",
    "truncated signature",
    "garbage",
]


def test_the_control_token_is_accepted(api: httpx.Client, issuer: TestIssuer) -> None:
    """Each bad token below differs from this accepted one in one respect only."""
    assert user_of(api, issuer.sign())["username"] == "oidc:olivia@example.com"


@pytest.mark.parametrize("case", BAD_OIDC_CASES)
def test_bad_oidc_token_is_401_and_nothing_else(
    api: httpx.Client, issuer: TestIssuer, case: str
) -> None:
    assert_rejected(api, _bad_oidc_tokens(issuer)[case])


# --- service-account tokens -----------------------------------------------------------------


def _sa_public_key(server: LiveServer) -> rsa.RSAPublicKey:
    key = serialization.load_pem_private_key(
        (server.data_dir / "pki" / "sa.key").read_bytes(), password=None
    )
    assert isinstance(key, rsa.RSAPrivateKey)
    return key.public_key()


def test_forged_service_account_tokens_are_401(
    api: httpx.Client, kubectl: Kubectl, live_server_berth: LiveServer, issuer: TestIssuer
) -> None:
    kubectl("create", "serviceaccount", "builder", "-n", "default")
    real = kubectl("create", "token", "builder", "-n", "default").strip()
    info = user_of(api, real)
    assert info["username"] == "system:serviceaccount:default:builder"
    claims = json.loads(_unb64(real.split(".")[1]))
    kid = json.loads(_unb64(real.split(".")[0]))["kid"]
    assert claims["iss"] == SA_ISSUER
    forged = {
        "alg none": unsigned_token(claims, kid=kid),
        "HS256 signed with the cluster's public key": hs256_with_public_key(
            claims, _sa_public_key(live_server_berth), kid
        ),
        "tampered subject": tampered(
            real,
            sub="system:serviceaccount:kube-system:admin",
            **{"kubernetes.io": {**claims["kubernetes.io"], "namespace": "kube-system"}},
        ),
        "signed by an OIDC issuer's key": jwt.encode(
            claims, issuer.keys["k1"], algorithm="RS256", headers={"kid": "k1"}
        ),
        "wrong audience": tampered(real, aud=["someone-else"]),
    }
    for name, token in forged.items():
        try:
            assert_rejected(api, token)
        except AssertionError as exc:
            raise AssertionError(f"{name}: {exc}") from exc


def test_token_of_a_deleted_service_account_is_401(api: httpx.Client, kubectl: Kubectl) -> None:
    kubectl("create", "serviceaccount", "doomed", "-n", "default")
    token = kubectl("create", "token", "doomed", "-n", "default", "--duration=1h").strip()
    assert user_of(api, token)["username"] == "system:serviceaccount:default:doomed"
    kubectl("delete", "serviceaccount", "doomed", "-n", "default")
    assert_rejected(api, token)
    # A new account of the same name has a new uid: the old token stays dead.
    kubectl("create", "serviceaccount", "doomed", "-n", "default")
    assert_rejected(api, token)


def test_token_bound_to_a_deleted_pod_is_401(api: httpx.Client, kubectl: Kubectl) -> None:
    kubectl("create", "serviceaccount", "runner", "-n", "default")
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "holder", "namespace": "default"},
        "spec": {
            "serviceAccountName": "runner",
            "nodeName": "nowhere",
            "containers": [{"name": "main", "image": "busybox"}],
        },
    }
    kubectl("create", "-f", "-", input=json.dumps(pod))
    token = kubectl(
        "create", "token", "runner", "-n", "default",
        "--bound-object-kind=Pod", "--bound-object-name=holder",
    ).strip()  # fmt: skip
    info = user_of(api, token)
    assert info["extra"]["authentication.kubernetes.io/pod-name"] == ["holder"]
    kubectl("delete", "pod", "holder", "-n", "default", "--grace-period=0", "--force")
    assert_rejected(api, token)


# --- bootstrap tokens, issued tokens, the token file ------------------------------------------


def test_bootstrap_tokens_are_listed_revoked_and_expire(
    api: httpx.Client, live_server_berth: LiveServer
) -> None:
    server = live_server_berth
    token = server.manage("token", "create", "--ttl", "1h", "--description", "join n7").strip()
    token_id = token.split(".")[0]
    short = server.manage("token", "create", "--ttl", "1s").strip()
    info = user_of(api, token)
    assert info["username"] == f"system:bootstrap:{token_id}"
    assert info["groups"] == [
        "system:bootstrappers",
        "system:bootstrappers:berth:default-node-token",
        "system:authenticated",
    ]
    # Expired: refused (after it lapses) with the same 401 as any bad token.
    time.sleep(2.1)
    assert_rejected(api, short)
    rows = {line.split()[0]: line.split() for line in server.manage("token", "list").splitlines()}
    assert rows["TOKEN"][:2] == ["TOKEN", "ID"]
    assert rows[token_id][2:] == ["valid", "join", "n7"]
    assert rows[short.split(".")[0]][2] == "expired"
    # A right id with a wrong secret is no token at all.
    assert_rejected(api, f"{token_id}.{'0' * 16}")
    assert server.manage("token", "delete", token_id).strip() == (
        f'bootstrap token "{token_id}" deleted'
    )
    assert_rejected(api, token)
    # Deleted means gone: a second delete finds nothing.
    missing = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "token", "delete", token_id],
        cwd=ROOT,
        env=server.env,
        capture_output=True,
        text=True,
    )
    assert missing.returncode == 1
    assert f'bootstrap token "{token_id}" not found' in missing.stderr


def test_manage_py_kubeconfig_gives_a_working_credential(
    live_server_berth: LiveServer, kubectl: Kubectl, api: httpx.Client
) -> None:
    path = live_server_berth.kubeconfig("carol", "auditors", "ops")
    carol = Kubectl(path, kubectl.cache_dir)
    review = json.loads(carol("auth", "whoami", "-o", "json"))
    assert review["status"]["userInfo"]["username"] == "carol"
    assert review["status"]["userInfo"]["groups"] == ["auditors", "ops", "system:authenticated"]
    kubectl(
        "create", "clusterrolebinding", "auditors-view", "--clusterrole=view", "--group=auditors"
    )
    carol("get", "pods", "-A")
    token = yaml.safe_load(path.read_text())["users"][0]["user"]["token"]
    assert user_of(api, token)["username"] == "carol"
    assert_rejected(api, token[:-4] + "AAAA")


def test_static_token_file_is_read_and_reloaded(api: httpx.Client, token_file: Path) -> None:
    assert user_of(api, STATIC_TOKEN)["groups"] == ["static-ops", "system:authenticated"]
    new_token = secrets.token_hex(16)
    token_file.write_text(f"{new_token},stella,uid-stella\n")
    deadline = time.monotonic() + 10
    while whoami(api, new_token).status_code != 201 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert user_of(api, new_token)["username"] == "stella"
    assert_rejected(api, STATIC_TOKEN)


# --- issuer key rotation (last: it changes the issuer's keys) -----------------------------


def test_rotated_issuer_key_is_picked_up_without_a_restart(
    api: httpx.Client, issuer: TestIssuer, live_server_berth: LiveServer
) -> None:
    server_pid = live_server_berth.process.pid if live_server_berth.process else None
    assert user_of(api, issuer.sign("k1"))["username"] == "oidc:olivia@example.com"
    issuer.publish("k2")
    rotated = issuer.sign("k2")
    started = time.monotonic()
    deadline = started + oidc.REFRESH_SECONDS + 10
    answers: list[int] = []
    while time.monotonic() < deadline:
        answers.append(whoami(api, rotated).status_code)
        if answers[-1] == 201:
            break
        time.sleep(0.5)
    assert answers[-1] == 201, f"the new key was not picked up: {answers}"
    assert set(answers[:-1]) <= {401}
    assert user_of(api, rotated)["username"] == "oidc:olivia@example.com"
    # The old key left the JWKS with the rotation: its tokens no longer verify.
    assert_rejected(api, issuer.sign("k1"))
    # Unknown kids never made the server fetch the JWKS more than once per refresh period.
    gaps = [b - a for a, b in zip(issuer.jwks_fetches, issuer.jwks_fetches[1:], strict=False)]
    assert gaps, "the JWKS was fetched only once"
    assert min(gaps) >= oidc.REFRESH_SECONDS - 0.5, issuer.jwks_fetches
    assert live_server_berth.process is not None
    assert live_server_berth.process.pid == server_pid
    assert live_server_berth.process.poll() is None
