"""Service-account tokens in the process runtime: requested bound to the pod, refreshed before
they expire, replaced atomically, and found by in-cluster clients in both ways the runtime
offers (a mount namespace at the standard path; a kubeconfig with an exec credential)."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from clusterapi.admission import serviceaccount
from clusterapi.nodeagent.runtimes.process import incluster
from tests.clusterapi.nodeagent.test_process_runtime import (
    PY,
    Harness,
    log_text,
    make_pod,
    py,
    run,
)

Obj = dict[str, Any]
CA = "-----BEGIN CERTIFICATE-----\nfake\n-----END CERTIFICATE-----\n"


@pytest.fixture(scope="module")
def namespaces_work(tmp_path_factory: pytest.TempPathFactory) -> bool:
    return asyncio.run(incluster.decide(tmp_path_factory.mktemp("probe"))).namespace


def stamp(moment: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(moment))


class FakeApi:
    """Issues tokens ``token-0``, ``token-1`` … (each longer than the last) living
    ``lifetime`` seconds; ``fail`` makes the next requests fail."""

    def __init__(self, lifetime: float = 3600.0) -> None:
        self.lifetime = lifetime
        self.bodies: list[tuple[str, Obj]] = []
        self.fail = 0

    async def post(self, path: str, body: Obj) -> Obj:
        self.bodies.append((path, body))
        if self.fail:
            self.fail -= 1
            raise RuntimeError(
                '403: {"kind":"Status","message":"serviceaccounts \\"default\\" is forbidden"}'
            )
        index = len(self.bodies) - 1
        token = f"token-{index}-" + "x" * (20_000 * (index % 3 + 1))
        return {
            "status": {
                "token": token,
                "expirationTimestamp": stamp(time.time() + self.lifetime),
            }
        }


POD: Obj = {
    "metadata": {"name": "web", "namespace": "team", "uid": "u-1"},
    "spec": {"serviceAccountName": "robot"},
}


def test_refresh_time_is_80_percent_of_the_lifetime_or_a_day() -> None:
    assert incluster.refresh_time(1000.0, 1000.0 + 3607) == pytest.approx(1000.0 + 2885.6)
    assert incluster.refresh_time(0.0, 48 * 3600.0) == 24 * 3600.0
    assert incluster.refresh_time(5.0, 5.0) == 5.0


def test_a_token_request_is_bound_to_the_pod_and_failures_say_why() -> None:
    api = FakeApi()
    token = asyncio.run(
        incluster.request_token(api, POD, {"expirationSeconds": 3607, "audience": "vault"})
    )
    path, body = api.bodies[0]
    assert path == "/api/v1/namespaces/team/serviceaccounts/robot/token"
    assert body["spec"] == {
        "expirationSeconds": 3607,
        "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": "web", "uid": "u-1"},
        "audiences": ["vault"],
    }
    assert token.token.startswith("token-0-")
    assert token.expires - token.issued == pytest.approx(3600, abs=1.5)
    api.fail = 1
    with pytest.raises(incluster.TokenError) as caught:
        asyncio.run(incluster.request_token(api, POD, {}))
    assert str(caught.value) == 'failed to fetch token: serviceaccounts "default" is forbidden'


def test_tokens_are_refreshed_before_expiry_and_readers_never_see_half_a_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(incluster, "RETRY_SECONDS", 0.1)
    api = FakeApi(lifetime=2.0)
    seen: set[str] = set()
    torn: list[str] = []
    stop = threading.Event()
    file = tmp_path / "volume" / "token"

    def reader() -> None:
        while not stop.is_set():
            try:
                text = file.read_text()
            except FileNotFoundError:
                continue
            seen.add(text[:8])
            index = int(text.split("-")[1])
            if len(text) != len(f"token-{index}-") + 20_000 * (index % 3 + 1):
                torn.append(text[:20])

    async def main() -> None:
        token = await incluster.request_token(api, POD, {})
        token.file = file
        token.credential = tmp_path / "credential.json"
        incluster.store(token)
        stopping = False
        task = asyncio.create_task(
            incluster.keep_fresh(api, POD, [token], asyncio.sleep, lambda: stopping)
        )
        await asyncio.sleep(1.0)
        api.fail = 2  # a failed refresh keeps the old token and is retried
        await asyncio.sleep(3.0)
        stopping = True
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        credential = yaml.safe_load(token.credential.read_text())
        assert credential["status"]["token"] == file.read_text() == token.token
        assert credential["status"]["expirationTimestamp"] == stamp(token.expires)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        asyncio.run(main())
    finally:
        stop.set()
        thread.join()
    assert not torn
    # At least three refreshes in four seconds of two-second tokens (80 %: every 0.8 to 1.6 s).
    assert len(api.bodies) - 2 >= 4, api.bodies
    assert len(seen) >= 3


def test_the_python_client_re_runs_the_exec_credential_and_sees_a_new_token(
    tmp_path: Path,
) -> None:
    from kubernetes import client, config

    volume = tmp_path / "volume"
    volume.mkdir()
    (volume / "ca.crt").write_text(CA)
    token = incluster.ProjectedToken(
        spec={}, token="first", issued=time.time(), expires=time.time() + 60
    )
    token.file = volume / "token"
    token.credential = tmp_path / "credential.json"
    incluster.store(token)
    path = tmp_path / "main.kubeconfig"
    incluster.write_kubeconfig(
        path,
        incluster.kubeconfig(incluster.server_url("10.0.0.1", "6443"), "team", volume, token),
    )
    configuration = client.Configuration()
    config.load_kube_config(config_file=str(path), client_configuration=configuration)
    assert configuration.host == "https://10.0.0.1:6443"
    assert configuration.ssl_ca_cert == str(volume / "ca.crt")
    assert configuration.api_key["BearerToken"] == "Bearer first"
    # The agent replaces the credential; a client whose credential is about to expire (the
    # Python client: within five minutes) runs the plugin again before its next request.
    token.token, token.expires = "second", time.time() + 3600
    incluster.store(token)
    assert configuration.refresh_api_key_hook is not None
    configuration.refresh_api_key_hook(configuration)
    assert configuration.api_key["BearerToken"] == "Bearer second"
    assert config.list_kube_config_contexts(str(path))[1]["context"]["namespace"] == "team"
    assert incluster.server_url("fd00::1", "443") == "https://[fd00::1]:443"


# --- through the runtime ---------------------------------------------------------------------

# Reads the standard path, built at run time so that the runtime's rewriting of mount paths
# in arguments cannot stand in for it; then, if a token is there (a mount of the pod's own,
# never the host's directory), tries to write beside it.
PROBE = (
    "import os\n"
    "d = os.sep.join(['', 'var', 'run', 'secrets', 'kubernetes.io', 'serviceaccount'])\n"
    "t = os.path.join(d, 'token')\n"
    "print('token', open(t).read() if os.path.exists(t) else '-')\n"
    "print('ca', open(os.path.join(d, 'ca.crt')).read().splitlines()[1] "
    "if os.path.exists(t) else '-')\n"
    "print('namespace', open(os.path.join(d, 'namespace')).read() if os.path.exists(t) else '-')\n"
    "try:\n"
    "    if os.path.exists(t):\n"
    "        open(os.path.join(d, 'mine'), 'w')\n"
    "        print('write allowed')\n"
    "except OSError as exc:\n"
    "    print('write refused', exc.errno)\n"
    "print('KUBECONFIG', os.environ.get('KUBECONFIG', '-'))\n"
)


def token_pod(*containers: Obj, automount: bool = True) -> Obj:
    """A pod as admission leaves it: the token volume mounted in every container."""
    pod = make_pod(*containers, policy="Never")
    if automount:
        serviceaccount.mount_token(pod["spec"])
    return pod


def lines(text: str) -> dict[str, str]:
    return dict(line.split(" ", 1) for line in text.splitlines() if " " in line)


def serve_ca(h: Harness) -> None:
    h.objects["/api/v1/namespaces/ns/configmaps/kube-root-ca.crt"] = {"data": {"ca.crt": CA}}


def test_with_mount_namespaces_clients_find_the_token_at_the_standard_path(
    tmp_path: Path, namespaces_work: bool
) -> None:
    if not namespaces_work:
        pytest.skip("this machine gives no mount namespaces (not root, or unshare refused)")

    async def test(h: Harness) -> None:
        serve_ca(h)
        pod = token_pod(py("main", PROBE))
        await asyncio.wait_for(h.start(pod), 15)
        assert h.runtime._access is not None and h.runtime._access.namespace
        output = await log_text(h, pod, "main")
        assert h.last["phase"] == "Succeeded", output
        seen = lines(output)
        assert seen["token"] == "projected-token"
        assert seen["ca"] == "fake"
        assert seen["namespace"] == "ns"
        assert seen["write"] == "refused 30"  # EROFS: the mount is read-only, as declared
        assert seen["KUBECONFIG"] == "-"
        # Nothing leaks to the host: its directory there is as empty as before.
        assert not (Path(incluster.MOUNT_PATH) / "token").exists()

        # A pod that opts out sees an empty directory there, never a token of the host's.
        quiet = token_pod(py("main", PROBE), automount=False)
        await asyncio.wait_for(h.start(quiet), 15)
        seen = lines(await log_text(h, quiet, "main"))
        assert seen["token"] == "-"
        assert "write" not in seen
        assert seen["KUBECONFIG"] == "-"

        # exec (probes, kubectl exec) enters the running container's mount namespace.
        sleeper = token_pod(py("main", "import time; time.sleep(30)"))
        task = h.start(sleeper)
        await h.until(lambda s: "running" in s["containerStatuses"][0]["state"])
        container = h.runtime.runs[sleeper["metadata"]["uid"]].container("main")
        assert container is not None
        check = (
            PROBE.split("t = ")[0] + "raise SystemExit(0 if os.path.isfile(d + '/token') else 3)"
        )
        assert await container.exec_in([PY, "-c", check], 10) == 0
        await h.runtime.stop_pod(sleeper, 0)
        await asyncio.gather(task, return_exceptions=True)

        # A missing program is still a StartError, not an exit code of the wrapper.
        missing = token_pod({"name": "main", "image": "x", "command": ["no-such-program"]})
        await asyncio.wait_for(h.start(missing), 15)
        terminated = h.last["containerStatuses"][0]["state"]["terminated"]
        assert (terminated["reason"], terminated["exitCode"]) == ("StartError", 128)

    run(test, tmp_path)


def test_without_mount_namespaces_clients_get_a_kubeconfig(tmp_path: Path) -> None:
    async def test(h: Harness) -> None:
        h.runtime.options.mount_namespace = "off"
        serve_ca(h)
        pod = token_pod(py("main", PROBE), {"name": "side", "image": "x", "command": ["true"]})
        await asyncio.wait_for(h.start(pod), 15)
        output = await log_text(h, pod, "main")
        assert h.last["phase"] == "Succeeded", output
        seen = lines(output)
        if not (Path(incluster.MOUNT_PATH) / "token").exists():  # the host has none
            assert seen["token"] == "-"  # not at the standard path: through KUBECONFIG
        kubeconfig = Path(seen["KUBECONFIG"])
        assert kubeconfig.parent.parent.name == pod["metadata"]["uid"]
        config = yaml.safe_load(kubeconfig.read_text())
        cluster = config["clusters"][0]["cluster"]
        assert cluster["server"] == "https://10.0.0.1:6443"
        volume = Path(cluster["certificate-authority"]).parent
        assert (volume / "ca.crt").read_text() == CA
        assert config["contexts"][0]["context"]["namespace"] == "ns"
        plugin = config["users"][0]["user"]["exec"]
        assert plugin["interactiveMode"] == "Never"
        credential = yaml.safe_load(Path(plugin["args"][0]).read_text())
        assert credential["status"]["token"] == (volume / "token").read_text()
        assert credential["status"]["token"] == "projected-token"

        # The exec plugin's command prints the credential, for any client to run.
        process = await asyncio.create_subprocess_exec(
            plugin["command"], *plugin["args"], stdout=asyncio.subprocess.PIPE
        )
        out, _ = await process.communicate()
        assert yaml.safe_load(out)["kind"] == "ExecCredential"

    run(test, tmp_path)


def test_a_failed_token_request_keeps_the_pod_creating_until_it_succeeds(
    tmp_path: Path,
) -> None:
    async def test(h: Harness) -> None:
        serve_ca(h)
        posted: list[str] = []
        real_post = h.runtime.api.post

        async def post(path: str, body: Obj) -> Obj:
            posted.append(path)
            if len(posted) == 1:
                raise RuntimeError('404: {"message":"serviceaccounts \\"default\\" not found"}')
            return await real_post(path, body)

        h.runtime.api.post = post
        pod = token_pod(py("main", "print('ran')"))
        task = h.start(pod)
        waiting = await h.until(
            lambda s: (
                "MountVolume.SetUp failed"
                in (s["containerStatuses"][0]["state"].get("waiting") or {}).get("message", "")
            )
        )
        message = waiting["containerStatuses"][0]["state"]["waiting"]["message"]
        assert message.endswith(': failed to fetch token: serviceaccounts "default" not found')
        await asyncio.wait_for(task, 15)
        assert h.last["phase"] == "Succeeded"
        assert (await log_text(h, pod, "main")).strip() == "ran"

    run(test, tmp_path)


def test_check_executable_mirrors_exec(tmp_path: Path) -> None:
    env = {"PATH": str(Path(PY).parent)}
    incluster.check_executable(Path(PY).name, env, tmp_path)
    with pytest.raises(FileNotFoundError):
        incluster.check_executable("no-such-program", env, tmp_path)
    (tmp_path / "script").write_text("#!/bin/sh\n")
    with pytest.raises(PermissionError):
        incluster.check_executable("./script", env, tmp_path)


def test_a_token_the_agent_did_not_issue_is_read_from_its_file(tmp_path: Path) -> None:
    # A Secret's token mounted at the standard path: nothing to refresh, so tokenFile.
    config = incluster.kubeconfig("https://10.0.0.1:6443", "team", tmp_path, None)
    assert config["users"][0]["user"] == {"tokenFile": str(tmp_path / "token")}
    assert "certificate-authority" not in config["clusters"][0]["cluster"]
