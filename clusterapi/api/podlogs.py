"""``GET /api/v1/namespaces/{ns}/pods/{name}/log``: a container's log, streamed from its node.

Flow: the request is authenticated and authorized (``get`` on ``pods/log``) on the thread
pool, with the pod, its container and its node looked up there; then, on the event loop (a
``follow`` can last for hours, like a watch), the node agent's ``/containerLogs`` endpoint is
called and its answer copied to the client chunk by chunk. The agent is found through the
Node (``InternalIP`` address, ``status.daemonEndpoints.kubeletEndpoint.Port``) and answers
only requests signed with a key derived from the node's credential, which only the API
server and that agent can compute (``clusterapi.nodeagent.runtimes.process.logserver``
explains the scheme): users can read logs through this endpoint, under RBAC, and no other way.

Query parameters, as upstream's ``PodLogOptions``: ``container``, ``follow``, ``previous``,
``timestamps``, ``tailLines``, ``sinceSeconds``/``sinceTime``, ``limitBytes``. Errors are
Statuses with upstream's words (``container x is not valid for pod y``, ``pod y does not
have a host assigned``, ``previous terminated container "x" in pod "y" not found``); a node
whose agent cannot be reached answers 503.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote, urlencode

import httpx
import orjson
from asgiref.sync import sync_to_async
from django.db import close_old_connections
from django.http import HttpRequest, HttpResponse, HttpResponseBase, StreamingHttpResponse
from django.utils import timezone

from clusterapi import store
from clusterapi.api.status import error_response, json_response
from clusterapi.store import errors
from clusterapi.store.errors import ApiError

PATH = re.compile(r"^namespaces/(?P<namespace>[^/]+)/pods/(?P<name>[^/]+)/log/?$")
CONNECT_TIMEOUT = 5.0
INT_PARAMS = {"tailLines": 0, "sinceSeconds": 1, "limitBytes": 1}
FLAG_PARAMS = ("follow", "previous", "timestamps")


def log_target(rest: str) -> tuple[str, str] | None:
    """(namespace, pod) when ``rest`` (after ``/api/v1/``) is a pod's ``log`` path."""
    match = PATH.match(rest)
    return (match["namespace"], match["name"]) if match else None


@dataclass(frozen=True)
class Plan:
    """Where to fetch a log from, and how to sign the request."""

    url: str
    authorization: str


def _service_unavailable(message: str) -> ApiError:
    return ApiError(503, "ServiceUnavailable", message)


def _options(request: HttpRequest) -> dict[str, str]:
    """The query forwarded to the agent, validated as upstream's PodLogOptions."""
    query = request.GET
    out: dict[str, str] = {}
    for name, minimum in INT_PARAMS.items():
        value = query.get(name)
        if value in (None, ""):
            continue
        try:
            number = int(value)
        except ValueError:
            raise errors.bad_request(f"{name}: Invalid value: {value!r}") from None
        if number < minimum:
            raise errors.bad_request(
                f"{name}: Invalid value: {number}: must be greater than or equal to {minimum}"
                if minimum == 0
                else f"{name}: Invalid value: {number}: must be greater than 0"
            )
        out[name] = str(number)
    since_time = query.get("sinceTime")
    if since_time:
        try:
            datetime.fromisoformat(since_time.replace("Z", "+00:00"))
        except ValueError:
            raise errors.bad_request(f"sinceTime: Invalid value: {since_time!r}") from None
        if "sinceSeconds" in out:
            raise errors.bad_request(
                "at most one of `sinceTime` or `sinceSeconds` may be specified"
            )
        out["sinceTime"] = since_time
    for name in FLAG_PARAMS:
        if query.get(name, "").lower() in ("true", "1"):
            out[name] = "true"
    return out


def _container(pod: store.objects.Obj, name: str, wanted: str) -> str:
    spec = pod.get("spec") or {}
    containers = [str(c.get("name")) for c in spec.get("containers") or ()]
    init = [str(c.get("name")) for c in spec.get("initContainers") or ()]
    ephemeral = [str(c.get("name")) for c in spec.get("ephemeralContainers") or ()]
    if not wanted:
        if len(containers) == 1:
            return containers[0]
        message = (
            f"a container name must be specified for pod {name}, choose one of: "
            f"[{' '.join(containers)}]"
        )
        if init:
            message += f" or one of the init containers: [{' '.join(init)}]"
        raise errors.bad_request(message)
    if wanted not in (*containers, *init, *ephemeral):
        raise errors.bad_request(f"container {wanted} is not valid for pod {name}")
    return wanted


def _node_key(node: str) -> bytes:
    from clusterapi.core.models import ApiToken
    from clusterapi.nodeagent.credentials import NODE_USER_PREFIX
    from clusterapi.nodeagent.runtimes.process.logserver import key_from_digest

    now = timezone.now()
    credential = (
        ApiToken.objects.filter(username=NODE_USER_PREFIX + node)
        .exclude(expires__lte=now)
        .order_by("-created")
        .first()
    )
    if credential is None:
        raise _service_unavailable(
            f'node "{node}" has no node credential: its agent must join with a bootstrap token '
            "to serve logs"
        )
    return key_from_digest(credential.digest)


def agent_endpoint(pod: store.objects.Obj, serves: str) -> tuple[str, str, int, bytes]:
    """The node of a scheduled pod and its agent's endpoint: (node, address, port, signing
    key). 400 for a pod without a node; 503 when the node is gone or publishes no endpoint
    (``serves`` names what was asked for: container logs, streams)."""
    from clusterapi.resources import by_kind

    nodes = by_kind("v1", "Node")
    assert nodes is not None
    name = str(pod["metadata"]["name"])
    node_name = str((pod.get("spec") or {}).get("nodeName") or "")
    if not node_name:
        raise errors.bad_request(f"pod {name} does not have a host assigned")
    try:
        node = store.get(nodes, "", node_name)
    except ApiError:
        raise _service_unavailable(f'node "{node_name}" of pod {name} is gone') from None
    status = node.get("status") or {}
    port = int(
        ((status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get("Port") or 0
    )
    addresses = {a.get("type"): a.get("address") for a in status.get("addresses") or ()}
    address = str(addresses.get("InternalIP") or addresses.get("ExternalIP") or "")
    if not port or not address:
        raise _service_unavailable(
            f'node "{node_name}" serves no {serves} (its agent publishes no endpoint)'
        )
    return node_name, address, port, _node_key(node_name)


def _plan(request: HttpRequest, namespace: str, name: str) -> Plan | HttpResponseBase:
    """Authorize and look everything up (blocking: runs on the thread pool)."""
    from clusterapi.api.views import admit_request, audit_request, unauthorized
    from clusterapi.nodeagent.runtimes.process.logserver import sign
    from clusterapi.resources import by_kind

    close_old_connections()
    try:
        try:
            if admit_request(request) is None:
                audit_request(request, 401)
                return unauthorized()
            options = _options(request)
            pods = by_kind("v1", "Pod")
            assert pods is not None
            pod = store.get(pods, namespace, name)
            container = _container(pod, name, request.GET.get("container", ""))
            node_name, address, port, key = agent_endpoint(pod, "container logs")
        except ApiError as exc:
            audit_request(request, exc.code)
            return error_response(exc)
        audit_request(request, 200)
        query = {"uid": str(pod["metadata"]["uid"]), **options}
        target = (
            f"/containerLogs/{quote(namespace, safe='')}/{quote(name, safe='')}/"
            f"{quote(container, safe='')}?{urlencode(query)}"
        )
        host = f"[{address}]" if ":" in str(address) else str(address)
        return Plan(f"http://{host}:{port}{target}", sign(key, node_name, target))
    finally:
        close_old_connections()


async def serve(request: HttpRequest, namespace: str, name: str) -> HttpResponseBase:
    """Answer a ``pods/log`` request (see the module docstring)."""
    plan = await sync_to_async(_plan, thread_sensitive=False)(request, namespace, name)
    if not isinstance(plan, Plan):
        return plan
    client = httpx.AsyncClient(timeout=httpx.Timeout(CONNECT_TIMEOUT, read=None))
    try:
        upstream = await client.send(
            client.build_request("GET", plan.url, headers={"Authorization": plan.authorization}),
            stream=True,
        )
    except httpx.HTTPError as exc:
        await client.aclose()
        return error_response(
            _service_unavailable(
                f"the node agent of pod {name} cannot be reached: {exc.__class__.__name__}: {exc}"
            )
        )
    if upstream.status_code != 200:
        body = await upstream.aread()
        await upstream.aclose()
        await client.aclose()
        return _relay_error(upstream.status_code, body)

    async def stream() -> AsyncIterator[bytes]:
        try:
            async for chunk in upstream.aiter_raw():
                yield chunk
        except httpx.HTTPError:
            return  # the agent went away mid-stream: end the log there
        finally:
            await upstream.aclose()
            await client.aclose()

    response = StreamingHttpResponse(stream(), content_type="text/plain")
    response["Cache-Control"] = "no-cache, private"
    return response


def _relay_error(code: int, body: bytes) -> HttpResponse:
    try:
        status = orjson.loads(body)
    except orjson.JSONDecodeError:
        status = None
    if isinstance(status, dict) and status.get("kind") == "Status":
        if code == 401:
            # The agent refused our signature: a credential rotated under us, not the user.
            return error_response(
                _service_unavailable("the node agent refused the API server's signature")
            )
        return json_response(status, status=code)
    return error_response(
        ApiError(
            500,
            "InternalError",
            f"the node agent answered {code}: {body[:200].decode(errors='replace')}",
        )
    )
