"""The resource endpoints: every verb on every kind, at Kubernetes' paths.

One async entry point per URL family receives the request, authenticates it, resolves the
path to a ``Target`` and hands the work to a synchronous handler on a thread pool (watches
stay on the event loop, in ``clusterapi.api.watching``). Handlers only parse, call the store
and render: every rule about objects lives in the store, admission and the kind declarations.
"""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson
from asgiref.sync import sync_to_async
from django.db import close_old_connections
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.views.decorators.csrf import csrf_exempt

from clusterapi import store
from clusterapi.admission.names import is_dns1123_subdomain
from clusterapi.api import negotiation, table
from clusterapi.api.requests import (
    Target,
    dry_run,
    field_validation,
    matcher,
    query_bool,
    query_int,
    resolve,
)
from clusterapi.api.status import error_response, json_response, success_status
from clusterapi.authn import User, chain
from clusterapi.core.selectors import format_label_selector
from clusterapi.resources.registry import Kind
from clusterapi.store import errors
from clusterapi.store.errors import ApiError

Obj = dict[str, Any]
logger = logging.getLogger(__name__)

# The threads that serve API requests. The work is mostly Python, so under the interpreter
# lock more threads add no throughput, only contention: with the event loop's default six,
# creates were slower than with fewer (threads taking turns on the lock while one of them
# holds SQLite's single writer slot). A few remain so that database waits and a slow LIST do
# not hold everything up. Watches, logs and exec streams run on the event loop instead.
_POOL = ThreadPoolExecutor(
    max_workers=int(os.environ.get("BERTH_API_THREADS", "4")), thread_name_prefix="berth-api"
)

PATCH_TYPES = (
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
)


def unauthorized() -> HttpResponse:
    return error_response(ApiError(401, "Unauthorized", "Unauthorized"))


def authenticate(request: HttpRequest) -> User | None:
    """The request's user, through the one authenticator chain (``clusterapi.authn``)."""
    return chain.authenticate(request)


def admit_request(request: HttpRequest) -> User | None:
    """Authenticate, impersonate and authorize a request; None when nobody is authenticated.

    Raises a 403 ``ApiError`` when RBAC denies it. The acting identity is kept on the request
    (``berth_user``, and ``berth_impersonator``) for the handlers, admission and the audit log.
    """
    from clusterapi.authn.impersonation import impersonate
    from clusterapi.rbac import authorize, forbidden_error, from_request

    user = authenticate(request)
    if user is None:
        return None
    request.berth_user = user  # type: ignore[attr-defined]
    acting, impersonator = impersonate(request.META, user)
    request.berth_user = acting  # type: ignore[attr-defined]
    request.berth_impersonator = impersonator  # type: ignore[attr-defined]
    attrs = from_request(request.method or "GET", request.path, request.GET, acting)
    request.berth_attributes = attrs  # type: ignore[attr-defined]
    decision = authorize(attrs)
    if not decision.allowed:
        raise forbidden_error(attrs, decision.reason)
    return acting


def _run_sync(request: HttpRequest, work: Callable[[], HttpResponseBase]) -> HttpResponseBase:
    """Admit the request, run ``work``, answer every failure as a Status, audit."""
    try:
        if admit_request(request) is None:
            response: HttpResponseBase = unauthorized()
        else:
            response = work()
    except ApiError as exc:
        response = error_response(exc)
    except Exception as exc:
        # Never an HTML error page: clients parse every answer as a Status.
        logger.exception("internal error serving %s %s", request.method, request.path)
        response = error_response(
            ApiError(
                500,
                "InternalError",
                f"Internal error occurred: {exc.__class__.__name__}: {exc}",
            )
        )
    audit_request(request, response.status_code)
    return response


def audit_request(request: HttpRequest, code: int) -> None:
    """Record a mutating or denied request in the audit log (never fails the request)."""
    from clusterapi.audit import log

    attrs = getattr(request, "berth_attributes", None)
    user = getattr(request, "berth_user", None)
    if attrs is None:
        # Refused before authorization (401, a forbidden impersonation): the event still
        # names verb and object, read from the URL as upstream's request info is.
        from clusterapi.rbac import from_request

        try:
            attrs = from_request(
                request.method or "GET",
                request.path,
                request.GET,
                user if user is not None else User("system:anonymous"),
            )
        except Exception:
            attrs = None
    verb = attrs.verb if attrs is not None else (request.method or "").lower()
    if not log.should_record(verb, code):
        return
    if code < 400 and attrs is not None and attrs.resource.endswith("reviews"):
        return  # reviews ask questions; they change nothing
    try:
        log.record(
            user=user.name if user is not None else "system:anonymous",
            groups=user.groups if user is not None else ("system:unauthenticated",),
            impersonator=getattr(request, "berth_impersonator", ""),
            verb=verb,
            request_uri=request.get_full_path(),
            code=code,
            api_group=attrs.api_group if attrs is not None else "",
            resource=attrs.resource if attrs is not None else "",
            subresource=attrs.subresource if attrs is not None else "",
            namespace=attrs.namespace if attrs is not None else "",
            name=(attrs.name if attrs is not None else "")
            or getattr(request, "berth_created_name", ""),
            change=getattr(request, "berth_diff", None),
            source_ip=str(request.META.get("REMOTE_ADDR", "")),
            user_agent=str(request.META.get("HTTP_USER_AGENT", "")),
        )
    except Exception:
        logger.exception("could not write the audit log")


async def in_thread(request: HttpRequest, work: Callable[[], HttpResponseBase]) -> HttpResponseBase:
    """Admit the request and run its blocking work on the shared pool (``on_pool``)."""
    return await on_pool(lambda: _run_sync(request, work))


def _with_connections(work: Callable[[], HttpResponseBase]) -> HttpResponseBase:
    # What Django's request signals would do in this thread: no stale or broken connection
    # is used, and none outlives the request.
    close_old_connections()
    try:
        return work()
    finally:
        close_old_connections()


async def on_pool(work: Callable[[], HttpResponseBase]) -> HttpResponseBase:
    """Run blocking work off the event loop, on the shared pool rather than a thread of
    Django's, so requests proceed in parallel (the public paths, which check credentials
    themselves, call it directly)."""
    run: Callable[..., Awaitable[HttpResponseBase]] = sync_to_async(
        _with_connections, thread_sensitive=False, executor=_POOL
    )
    return await run(work)


@csrf_exempt
async def core_resources(request: HttpRequest, rest: str) -> HttpResponseBase:
    return await _dispatch(request, "", "v1", rest)


@csrf_exempt
async def group_resources(
    request: HttpRequest, group: str, version: str, rest: str
) -> HttpResponseBase:
    return await _dispatch(request, group, version, rest)


async def _dispatch(request: HttpRequest, group: str, version: str, rest: str) -> HttpResponseBase:
    if group == "" and request.method == "GET" and rest.endswith(("/log", "/log/")):
        # pods/log streams from the node agent: on the event loop, as watches.
        from clusterapi.api import podlogs

        where = podlogs.log_target(rest)
        if where is not None:
            return await podlogs.serve(request, *where)
    if group == "" and rest.endswith(("/exec", "/attach", "/portforward")):
        # Served over WebSockets (``streams``); a plain request (kubectl's SPDY fallback)
        # is authorized and checked alike, then told to upgrade.
        from clusterapi.api import streams

        if streams.stream_target(request.path) is not None:
            return await streams.not_upgraded(request)
    try:
        target = resolve(group, version, rest)
    except ApiError as exc:
        return error_response(exc)
    watch = query_bool(request.GET, "watch") and not target.kind.reader
    if request.method == "GET" and target.is_collection and watch:
        from clusterapi.api import watching

        return await watching.watch(request, target)
    return await in_thread(request, lambda: handle(request, target))


def handle(request: HttpRequest, target: Target) -> HttpResponseBase:
    method = request.method or "GET"
    if target.kind.review and not (method == "POST" and target.is_collection):
        raise errors.method_not_allowed()
    if target.kind.reader:
        from clusterapi.api import computed

        return computed.handle(request, target)
    if target.subresource:
        return _subresource(request, target, method)
    if target.is_collection:
        if method == "GET":
            return list_(request, target)
        if method == "POST":
            return create(request, target)
        if method == "DELETE":
            return delete_collection(request, target)
    else:
        if method == "GET":
            return get(request, target)
        if method == "PUT":
            return replace(request, target)
        if method == "PATCH":
            return patch(request, target)
        if method == "DELETE":
            return delete(request, target)
    raise errors.method_not_allowed()


# --- reads ------------------------------------------------------------------------------------


def get(request: HttpRequest, target: Target) -> HttpResponse:
    raw = store.objects.get_raw(target.kind, target.namespace, target.name)
    table_version = table.wanted(request)
    if table_version:
        obj = store.objects.decode(raw)
        return json_response(table.build(target.kind, [obj], request, str(_rv(obj))))
    return json_response(raw)


def _rv(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion", ""))


def list_(request: HttpRequest, target: Target) -> HttpResponse:
    kind = target.kind
    query = request.GET
    match, name = matcher(kind, query)
    limit = query_int(query, "limit") or 0
    as_table = bool(table.wanted(request))
    # Unfiltered Table lists (plain `kubectl get`) join the rows kept with the objects.
    kept_rows = as_table and match is None and table.from_stored_rows(kind, request)
    result = store.list_objects(
        kind,
        target.namespace or None,
        match=match,
        name=name,
        limit=max(limit, 0),
        continue_token=query.get("continue", ""),
        table_rows=kept_rows,
    )
    meta: Obj = {"resourceVersion": str(result.resource_version)}
    if result.continue_token:
        meta["continue"] = result.continue_token
    if result.remaining is not None:
        meta["remainingItemCount"] = result.remaining
    if kept_rows and result.table_rows is not None:
        payload = table.build_from_stored(kind, result.table_rows, result.raw, meta)
        return HttpResponse(payload, content_type="application/json")
    if as_table:
        body = table.build(kind, result.objects(), request, meta["resourceVersion"])
        body["metadata"] = meta
        return json_response(body)
    head = orjson.dumps({"kind": kind.list_kind, "apiVersion": kind.api_version, "metadata": meta})[
        :-1
    ]
    payload = head + b',"items":[' + ",".join(result.raw).encode() + b"]}"
    return HttpResponse(payload, content_type="application/json")


# --- writes -----------------------------------------------------------------------------------


def _note_change(request: HttpRequest, result: store.WriteResult) -> None:
    """Keep an update's diff for the audit log."""
    if result.previous is not None and result.changed:
        from clusterapi.audit import log

        request.berth_diff = log.diff(result.previous, result.obj)  # type: ignore[attr-defined]


def _write_options(request: HttpRequest) -> dict[str, Any]:
    return {
        "dry_run": dry_run(request.GET),
        "field_validation": field_validation(request.GET),
        "field_manager": request.GET.get("fieldManager", ""),
        "user": getattr(request, "berth_user", None),
    }


def _body_object(request: HttpRequest, kind: Kind) -> Obj:
    body = negotiation.decode_body(request)
    if not isinstance(body, dict):
        raise errors.bad_request(f"the body of the request must be a {kind.kind} object")
    return body


def create(request: HttpRequest, target: Target) -> HttpResponse:
    kind = target.kind
    if kind.namespaced and not target.namespace:
        raise errors.method_not_allowed(
            f"{kind.plural} must be created in a namespace (POST to "
            f"/{'apis/' + kind.group if kind.group else 'api'}/{kind.version}/namespaces/"
            f"<namespace>/{kind.plural})"
        )
    body = _body_object(request, kind)
    if kind.review:
        from django.utils.module_loading import import_string

        body["apiVersion"], body["kind"] = kind.api_version, kind.kind
        answer = import_string(kind.review)(request.berth_user, body, target.namespace)  # type: ignore[attr-defined]
        return json_response(answer, status=201)
    result = store.create(kind, body, namespace=target.namespace, **_write_options(request))
    # The URL of a create names no object; the audit log names the one created.
    request.berth_created_name = result.obj["metadata"]["name"]  # type: ignore[attr-defined]
    return json_response(result.obj, status=201, warnings=result.warnings)


def replace(request: HttpRequest, target: Target) -> HttpResponse:
    body = _body_object(request, target.kind)
    result = store.update(
        target.kind, target.namespace, target.name, body, **_write_options(request)
    )
    _note_change(request, result)
    return json_response(result.obj, warnings=result.warnings)


def _apply_patch(request: HttpRequest, kind: Kind) -> Callable[[Obj], Obj]:
    from clusterapi.store import patch as patching

    ctype = negotiation.content_type(request)
    body = request.body

    def mutate(obj: Obj) -> Obj:
        try:
            return patching.apply_patch(obj, body, ctype, kind.definition)
        except patching.PatchError as exc:
            raise _patch_error(exc, kind, obj) from exc

    return mutate


def _patch_error(exc: Any, kind: Kind, obj: Obj) -> ApiError:
    reason = {400: "BadRequest", 415: "UnsupportedMediaType", 409: "Conflict"}.get(
        exc.code, "Invalid"
    )
    if exc.code == 422:
        # Upstream answers a patch that cannot be applied (a failed JSON-patch "test", a
        # missing path) with a generic 422 naming no object: kubectl then prints "The request
        # is invalid: <message>" rather than a bare 'The Deployment "x" is invalid'.
        return ApiError(exc.code, reason, exc.message)
    name = str((obj.get("metadata") or {}).get("name", ""))
    return ApiError(exc.code, reason, exc.message, name=name, group=kind.group, kind=kind.kind)


def _check_patch_type(request: HttpRequest) -> str:
    ctype = negotiation.content_type(request)
    if ctype not in PATCH_TYPES:
        raise errors.unsupported_media_type(
            "the body of the request was in an unknown format - accepted media types include: "
            + ", ".join(PATCH_TYPES)
        )
    return ctype


def patch(request: HttpRequest, target: Target, subresource: str = "") -> HttpResponse:
    kind = target.kind
    ctype = _check_patch_type(request)
    options = _write_options(request)
    if ctype == "application/apply-patch+yaml":
        return _server_side_apply(request, target, subresource, options)
    result = store.guaranteed_update(
        kind,
        target.namespace,
        target.name,
        _apply_patch(request, kind),
        subresource=subresource,
        **options,
    )
    _note_change(request, result)
    return json_response(result.obj, warnings=result.warnings)


def _server_side_apply(
    request: HttpRequest, target: Target, subresource: str, options: dict[str, Any]
) -> HttpResponse:
    from clusterapi.store import apply as ssa

    kind = target.kind
    manager = options["field_manager"]
    if not manager:
        raise errors.bad_request(
            "PATCH, application/apply-patch+yaml requests must include fieldManager"
        )
    applied = negotiation.decode_body(request)
    if not isinstance(applied, dict):
        raise errors.bad_request("the body of an apply patch must be an object")
    force = query_bool(request.GET, "force")
    applied.setdefault("apiVersion", kind.api_version)
    applied.setdefault("kind", kind.kind)
    meta = applied.setdefault("metadata", {})
    if isinstance(meta, dict):
        if meta.get("name") not in (None, target.name):
            raise errors.bad_request(
                f"the name of the object ({meta.get('name')}) does not match the name on the "
                f"URL ({target.name})"
            )
        meta["name"] = target.name

    def mutate(live: Obj) -> Obj:
        try:
            return ssa.server_side_apply(
                live,
                copy.deepcopy(applied),
                manager,
                force=force,
                definition=kind.definition,
                api_version=kind.api_version,
                now=store.now(),
            )
        except ssa.ApplyConflict as exc:
            raise ApiError(
                409,
                "Conflict",
                exc.message,
                causes=[
                    errors.Cause("FieldManagerConflict", f'conflict with "{m}"', f)
                    for m, f in exc.conflicts
                ],
            ) from exc

    def create_missing() -> Obj:
        return mutate_new()

    def mutate_new() -> Obj:
        return ssa.server_side_apply(
            None,
            copy.deepcopy(applied),
            manager,
            force=force,
            definition=kind.definition,
            api_version=kind.api_version,
            now=store.now(),
        )

    result = store.guaranteed_update(
        kind,
        target.namespace,
        target.name,
        mutate,
        subresource=subresource,
        create_missing=None if subresource else create_missing,
        manage_fields=False,
        **options,
    )
    _note_change(request, result)
    status = 201 if result.created else 200
    return json_response(result.obj, status=status, warnings=result.warnings)


def _delete_options(request: HttpRequest) -> dict[str, Any]:
    body = negotiation.decode_body(request, allow_empty=True) or {}
    if not isinstance(body, dict):
        raise errors.bad_request("DeleteOptions must be an object")
    query = request.GET
    grace = query_int(query, "gracePeriodSeconds")
    if grace is None and body.get("gracePeriodSeconds") is not None:
        grace = int(body["gracePeriodSeconds"])
    propagation = query.get("propagationPolicy") or body.get("propagationPolicy")
    orphan = query.get("orphanDependents")
    if orphan is None and body.get("orphanDependents") is not None:
        orphan = str(body["orphanDependents"]).lower()
    if propagation is None and orphan is not None:
        propagation = "Orphan" if orphan == "true" else "Background"
    if propagation not in (None, "Orphan", "Background", "Foreground"):
        raise errors.bad_request(
            f'Unsupported value: "{propagation}": supported values: "Foreground", '
            '"Background", "Orphan"'
        )
    preconditions = body.get("preconditions") or {}
    dry = dry_run(query) or bool(body.get("dryRun"))
    return {
        "grace_period": grace,
        "propagation": propagation,
        "precondition_uid": preconditions.get("uid"),
        "precondition_rv": preconditions.get("resourceVersion"),
        "dry_run": dry,
        "user": getattr(request, "berth_user", None),
    }


def delete(request: HttpRequest, target: Target) -> HttpResponse:
    kind = target.kind
    result = store.delete(kind, target.namespace, target.name, **_delete_options(request))
    if kind.delete_returns_object or not result.deleted:
        return json_response(result.obj)
    meta = result.obj["metadata"]
    details: Obj = {"name": meta["name"]}
    if kind.group:
        details["group"] = kind.group
    details["kind"] = kind.plural
    details["uid"] = meta["uid"]
    return json_response(success_status(details))


def delete_collection(request: HttpRequest, target: Target) -> HttpResponse:
    kind = target.kind
    match, name = matcher(kind, request.GET)
    options = _delete_options(request)
    options.pop("precondition_uid")
    options.pop("precondition_rv")
    if name is not None and match is None:

        def match(obj: Obj) -> bool:
            return bool(obj["metadata"]["name"] == name)

    deleted = store.delete_collection(kind, target.namespace or None, match=match, **options)
    return json_response(
        {
            "kind": kind.list_kind,
            "apiVersion": kind.api_version,
            "metadata": {"resourceVersion": str(store.current_revision())},
            "items": deleted,
        }
    )


# --- subresources -----------------------------------------------------------------------------


def _subresource(request: HttpRequest, target: Target, method: str) -> HttpResponse:
    sub = target.subresource
    if sub in ("status", "finalize"):
        if method == "GET" and sub == "status":
            return get(request, target)
        if method == "PUT":
            body = _body_object(request, target.kind)
            result = store.update(
                target.kind,
                target.namespace,
                target.name,
                body,
                subresource=sub,
                **_write_options(request),
            )
            _note_change(request, result)
            return json_response(result.obj, warnings=result.warnings)
        if method == "PATCH":
            return patch(request, target, subresource=sub)
    elif sub == "scale":
        return _scale(request, target, method)
    elif sub == "binding" and method == "POST":
        return _bind(request, target)
    elif sub == "eviction" and method == "POST":
        return _evict(request, target)
    elif sub == "token" and method == "POST":
        return _token_request(request, target)
    raise errors.method_not_allowed()


def _scale_of(kind: Kind, obj: Obj) -> Obj:
    meta = obj["metadata"]
    spec = obj.get("spec") or {}
    selector = spec.get("selector")
    if kind.kind == "ReplicationController":
        selector_text = ",".join(f"{k}={v}" for k, v in sorted((selector or {}).items()))
    else:
        selector_text = format_label_selector(selector) if selector else ""
        if selector_text == "<none>":
            selector_text = ""
    status: Obj = {"replicas": int((obj.get("status") or {}).get("replicas", 0))}
    if selector_text:
        status["selector"] = selector_text
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            key: meta[key]
            for key in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
            if key in meta
        },
        "spec": {"replicas": int(spec.get("replicas", 0))},
        "status": status,
    }


def _scale(request: HttpRequest, target: Target, method: str) -> HttpResponse:
    kind = target.kind
    if method == "GET":
        return json_response(_scale_of(kind, store.get(kind, target.namespace, target.name)))
    if method not in ("PUT", "PATCH"):
        raise errors.method_not_allowed()
    options = _write_options(request)
    if method == "PUT":
        body = _body_object(request, kind)
    else:
        ctype = _check_patch_type(request)
        if ctype == "application/apply-patch+yaml":
            raise errors.unsupported_media_type("apply patches are not supported on scale")
        body = {}

    def set_replicas(obj: Obj) -> Obj:
        scale = _scale_of(kind, obj)
        if method == "PUT":
            wanted = body
        else:
            from clusterapi.store import patch as patching

            try:
                wanted = patching.apply_patch(
                    scale,
                    request.body,
                    negotiation.content_type(request),
                    "io.k8s.api.autoscaling.v1.Scale",
                )
            except patching.PatchError as exc:
                raise _patch_error(exc, kind, obj) from exc
        # ScaleSpec.replicas is omitempty: clients send ``"spec":{}`` to scale to zero
        # (``kubectl scale --replicas=0 --current-replicas=N`` PUTs exactly that).
        replicas = (wanted.get("spec") or {}).get("replicas", 0)
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            # Upstream validates the Scale itself, so the error names Scale.autoscaling.
            name = obj["metadata"]["name"]
            detail = f"Invalid value: {replicas}: must be greater than or equal to 0"
            raise ApiError(
                422,
                "Invalid",
                f'Scale.autoscaling "{name}" is invalid: spec.replicas: {detail}',
                name=name,
                group="autoscaling",
                kind="Scale",
                causes=[errors.Cause("FieldValueInvalid", detail, "spec.replicas")],
            )
        wanted_rv = (wanted.get("metadata") or {}).get("resourceVersion")
        obj.setdefault("spec", {})["replicas"] = replicas
        if wanted_rv:
            obj["metadata"]["resourceVersion"] = wanted_rv
        return obj

    result = store.guaranteed_update(kind, target.namespace, target.name, set_replicas, **options)
    _note_change(request, result)
    return json_response(_scale_of(kind, result.obj))


def _token_request(request: HttpRequest, target: Target) -> HttpResponse:
    """TokenRequest (``kubectl create token``): a service-account JWT, optionally bound."""
    from clusterapi.authn import serviceaccounts
    from clusterapi.resources import by_kind

    account = store.get(target.kind, target.namespace, target.name)
    body = negotiation.decode_body(request, allow_empty=True) or {}
    if not isinstance(body, dict):
        raise errors.bad_request("the body of the request must be a TokenRequest object")
    spec = body.get("spec") or {}
    expiration = int(spec.get("expirationSeconds") or serviceaccounts.DEFAULT_EXPIRATION)
    if expiration < serviceaccounts.MIN_EXPIRATION:
        raise errors.invalid(
            target.kind,
            target.name,
            [
                errors.Cause(
                    "FieldValueInvalid",
                    f"Invalid value: {expiration}: may not specify a duration less than 10 minutes",
                    "spec.expirationSeconds",
                )
            ],
        )
    bound = None
    ref = spec.get("boundObjectRef")
    if isinstance(ref, dict) and ref.get("name"):
        bound_kind = by_kind(str(ref.get("apiVersion") or "v1"), str(ref.get("kind", "")))
        if bound_kind is None or bound_kind.kind not in ("Pod", "Secret"):
            raise errors.bad_request(f"cannot bind token to object of kind {ref.get('kind')!r}")
        bound = store.get(bound_kind, target.namespace, str(ref["name"]))
        if ref.get("uid") and ref["uid"] != bound["metadata"]["uid"]:
            raise errors.conflict(
                bound_kind,
                str(ref["name"]),
                "the UID in the bound object reference does not match the object",
            )
    token, expires = serviceaccounts.issue(
        target.namespace,
        account,
        audiences=list(spec.get("audiences") or []) or None,
        expiration_seconds=expiration,
        bound=bound,
    )
    from datetime import UTC, datetime

    spec = {**spec, "expirationSeconds": expiration}
    spec.setdefault("audiences", [serviceaccounts.issuer()])
    return json_response(
        {
            "kind": "TokenRequest",
            "apiVersion": "authentication.k8s.io/v1",
            "metadata": {
                "name": target.name,
                "namespace": target.namespace,
                "creationTimestamp": None,
            },
            "spec": spec,
            "status": {
                "token": token,
                "expirationTimestamp": datetime.fromtimestamp(expires, UTC).strftime(
                    "%Y-%m-%dT%H:%M:%SZ"
                ),
            },
        },
        status=201,
    )


def _bind(request: HttpRequest, target: Target) -> HttpResponse:
    kind = target.kind
    body = negotiation.decode_body(request)
    node = ((body or {}).get("target") or {}).get("name") if isinstance(body, dict) else None
    if not node:
        raise errors.invalid(
            kind,
            target.name,
            [errors.Cause("FieldValueRequired", "Required value", "target.name")],
        )
    # The pod itself is not validated again (subresource "binding"): only the node's name is new.
    problems = is_dns1123_subdomain(node) if isinstance(node, str) else ["must be a string"]
    if problems:
        raise errors.invalid(
            kind,
            target.name,
            [
                errors.Cause(
                    "FieldValueInvalid", f"Invalid value: {node!r}: {problems[0]}", "target.name"
                )
            ],
        )

    def bind(pod: Obj) -> Obj:
        spec = pod.setdefault("spec", {})
        current = spec.get("nodeName")
        if current:
            raise errors.conflict(
                kind, target.name, f'pod {target.name} is already assigned to node "{current}"'
            )
        if pod["metadata"].get("deletionTimestamp"):
            raise errors.conflict(kind, target.name, "pod is being deleted, cannot be assigned")
        spec["nodeName"] = node
        return pod

    store.guaranteed_update(
        kind,
        target.namespace,
        target.name,
        bind,
        subresource="binding",
        dry_run=dry_run(request.GET),
        manage_fields=False,  # a binding bypasses field management upstream as well
    )
    return json_response(
        {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201},
        status=201,
    )


def _evict(request: HttpRequest, target: Target) -> HttpResponse:
    """POST policy/v1 Eviction: delete the pod unless its PodDisruptionBudget forbids it."""
    from clusterapi.controllers import disruption

    body = negotiation.decode_body(request)
    if not isinstance(body, dict):
        raise errors.bad_request("the body of the request must be an Eviction object")
    answer = disruption.evict(
        target.namespace,
        target.name,
        body,
        user=getattr(request, "berth_user", None),
        dry_run=dry_run(request.GET),
    )
    return json_response(answer, status=201)
