"""PATCH bodies applied the way the Kubernetes API server applies them.

The store calls these pure functions inside its read-modify-write loop: it hands over a copy of
the current object and the decoded body, gets the patched object back (or a ``PatchError``) and
then runs defaulting, admission and the no-op check as for any update. Nothing here touches
Django or does I/O, and the input object is never mutated.

Three patch formats exist (``kubectl patch --type``):

``application/json-patch+json`` (RFC 6902)
    A list of operations (add, remove, replace, move, copy, test), applied in order with the
    ``jsonpatch`` library. Kubernetes answers an operation that cannot apply (a ``test`` that
    fails, a ``remove``/``replace`` of a path that does not exist) with 422 Invalid and the
    wording of the Go json-patch library, which ``_json_patch_failure`` reproduces.

``application/merge-patch+json`` (RFC 7386)
    Objects merge key by key, ``null`` deletes, everything else (lists included) replaces.

``application/strategic-merge-patch+json``
    Kubernetes' own format, driven by the schema: the OpenAPI annotations
    ``x-kubernetes-patch-strategy`` and ``x-kubernetes-patch-merge-key`` say which lists merge
    (containers by ``name``, container ports by ``containerPort``, Service ports by ``port``,
    conditions by ``type``, finalizers as an ordered set) and which are replaced. Directives
    steer the merge: ``$patch: replace|delete|merge`` on maps and list elements,
    ``$setElementOrder/<list>`` (sent by ``kubectl apply`` to keep the user's order),
    ``$retainKeys`` (union types such as a Deployment's ``strategy`` or a volume source) and
    ``$deleteFromPrimitiveList/<list>``. The behaviour follows apimachinery's ``strategicpatch``
    package (``mergeMap``/``mergeSlice``/``normalizeElementOrder``); the element ordering of
    merged lists in particular matches it: items named by the patch come in the patch's order,
    items only on the server keep their relative place, and a new item goes before the
    server-only items it meets (so ``kubectl patch`` adding a container, or a port to a
    Service, lists the new item first, as the kubectl patch documentation shows).
    Where no schema is known (an unknown field, a free-form map) the merge falls back to
    merge-patch semantics: maps merge, lists are replaced. Directive keys never survive into
    the result.

``apply_patch`` dispatches on the request's content type and decodes the body. Strategic merge
is refused with 415 for kinds without a built-in schema (custom resources), exactly as the API
server does, which is what makes ``kubectl`` retry those patches as merge patches.

``SchemaNode`` is the schema navigation shared with ``clusterapi.store.apply``: it resolves
``$ref`` chains without losing the annotations that sit on the referring property node.

Known gaps: upstream answers some ill-formed strategic patches (a list element without its
merge key, mixed element types) with a plain 500; Berth answers 400 BadRequest, with the same
message. ``$patch: merge`` is accepted (as the default merge) on maps and list
elements, where upstream rejects it.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Any, Final

import jsonpatch

from clusterapi.resources import schemas

JSON_PATCH: Final = "application/json-patch+json"
MERGE_PATCH: Final = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH: Final = "application/strategic-merge-patch+json"
APPLY_PATCH: Final = "application/apply-patch+yaml"

PATCH_DIRECTIVE: Final = "$patch"
RETAIN_KEYS_DIRECTIVE: Final = "$retainKeys"
SET_ELEMENT_ORDER_PREFIX: Final = "$setElementOrder/"
DELETE_FROM_PRIMITIVE_LIST_PREFIX: Final = "$deleteFromPrimitiveList/"

_REASONS: Final = {400: "BadRequest", 415: "UnsupportedMediaType", 422: "Invalid"}

# Upstream's sentinel errors (apimachinery/pkg/util/mergepatch/errors.go), worded the same.
_BAD_PRIMITIVE_LIST: Final = "invalid patch format of primitive list"
_BAD_RETAIN_KEYS: Final = "invalid patch format of retainKeys"
_BAD_ELEMENT_ORDER: Final = "invalid patch format of setElementOrder list"
_RETAIN_KEYS_MISMATCH: Final = "patch content doesn't match retainKeys list"
_NO_LIST_OF_LISTS: Final = "lists of lists are not supported"


class PatchError(Exception):
    """A patch that cannot be applied; ``code`` is the HTTP status Kubernetes answers."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def reason(self) -> str:
        """The ``Status`` reason that goes with ``code``."""
        return _REASONS.get(self.code, "BadRequest")


class _Missing:
    """Marks an absent key (``None`` is a JSON value, so it cannot mean "absent")."""

    def __repr__(self) -> str:
        return "<missing>"


_MISSING: Final = _Missing()


# --------------------------------------------------------------------------------------------
# Schema navigation
# --------------------------------------------------------------------------------------------

_ANNOTATIONS: Final = (
    "x-kubernetes-patch-strategy",
    "x-kubernetes-patch-merge-key",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-map-type",
)


@dataclass(frozen=True, eq=False)
class SchemaNode:
    """The patch-relevant view of one schema node.

    ``schema`` is the structural schema after following ``$ref``; the annotations are
    collected along the way, the referring node winning, because the OpenAPI documents put
    ``x-kubernetes-patch-strategy`` on the property (``DeploymentSpec.strategy``) and not on
    the definition it references.
    """

    schema: schemas.Schema
    patch_strategy: str | None
    retain_keys: bool
    merge_key: str | None
    list_type: str | None
    list_map_keys: tuple[str, ...]
    map_type: str | None

    def field(self, key: str) -> SchemaNode | None:
        """The node of property ``key`` (or of a map's values); None when unknown."""
        properties, values = self._children
        node = properties.get(key)
        return node if node is not None else values

    def items(self) -> SchemaNode | None:
        """The node of a list's items; None when unknown."""
        return self._items

    # Resolved once per node: patches and field ownership walk every field of every write
    # through these, and resolving them each time was most of that walk.
    @functools.cached_property
    def _children(self) -> tuple[dict[str, SchemaNode], SchemaNode | None]:
        props = self.schema.get("properties")
        properties = (
            {k: schema_node(v) for k, v in props.items() if isinstance(v, dict)}
            if isinstance(props, dict)
            else {}
        )
        extra = self.schema.get("additionalProperties")
        return properties, schema_node(extra) if isinstance(extra, dict) else None

    @functools.cached_property
    def _items(self) -> SchemaNode | None:
        item = self.schema.get("items")
        return schema_node(item) if isinstance(item, dict) else None

    @property
    def is_free_form_map(self) -> bool:
        """A map of arbitrary keys (labels, data, limits), not a struct with properties."""
        return "properties" not in self.schema and isinstance(
            self.schema.get("additionalProperties"), dict
        )


# Nodes come from schemas.definitions(), which lives for the whole process, so a node's id()
# identifies it; the cached raw node is kept and compared so a recycled id cannot alias.
_NODE_CACHE: dict[int, tuple[schemas.Schema, SchemaNode]] = {}


def schema_node(raw: schemas.Schema) -> SchemaNode:
    """Resolve ``raw`` (a property, item or definition node) into a ``SchemaNode``."""
    hit = _NODE_CACHE.get(id(raw))
    if hit is not None and hit[0] is raw:
        return hit[1]
    found: dict[str, Any] = {}
    node = raw
    for _ in range(32):
        for key in _ANNOTATIONS:
            if key in node and key not in found:
                found[key] = node[key]
        ref = node.get("$ref")
        all_of = node.get("allOf")
        if ref is None and isinstance(all_of, list) and len(all_of) == 1:
            ref = all_of[0].get("$ref") if isinstance(all_of[0], dict) else None
        if not isinstance(ref, str) or not ref.startswith(schemas.REF_PREFIX):
            break
        target = schemas.definitions().get(ref.removeprefix(schemas.REF_PREFIX))
        if target is None:
            break
        node = target
    strategies = found.get("x-kubernetes-patch-strategy")
    parts = [p.strip() for p in strategies.split(",")] if isinstance(strategies, str) else []
    others = [p for p in parts if p and p != "retainKeys"]
    merge_key = found.get("x-kubernetes-patch-merge-key")
    list_type = found.get("x-kubernetes-list-type")
    map_keys = found.get("x-kubernetes-list-map-keys")
    map_type = found.get("x-kubernetes-map-type")
    result = SchemaNode(
        schema=node,
        patch_strategy=others[0] if others else None,
        retain_keys="retainKeys" in parts,
        merge_key=merge_key if isinstance(merge_key, str) else None,
        list_type=list_type if isinstance(list_type, str) else None,
        list_map_keys=(
            tuple(k for k in map_keys if isinstance(k, str)) if isinstance(map_keys, list) else ()
        ),
        map_type=map_type if isinstance(map_type, str) else None,
    )
    _NODE_CACHE[id(raw)] = (raw, result)
    return result


def root_node(definition: str | None) -> SchemaNode | None:
    """The node of a top-level definition (``io.k8s.api.apps.v1.Deployment``), if known."""
    if not definition:
        return None
    raw = schemas.definitions().get(definition)
    return schema_node(raw) if raw is not None else None


# --------------------------------------------------------------------------------------------
# JSON helpers
# --------------------------------------------------------------------------------------------


def clone(value: Any) -> Any:
    """A deep copy of a JSON value (much cheaper than ``copy.deepcopy``)."""
    if isinstance(value, dict):
        return {k: clone(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clone(v) for v in value]
    return value


def scalar_key(value: Any) -> Hashable:
    """A hashable identity of a JSON value with JSON's equality.

    Python's ``1 == True`` must not make a boolean match a number; ints and floats compare
    numerically, as Go's float64 decoding makes them.
    """
    if isinstance(value, bool):
        return ("b", value)
    if isinstance(value, int | float):
        return ("n", value)
    if isinstance(value, str):
        return ("s", value)
    if value is None:
        return ("z", None)
    return ("j", json.dumps(value, sort_keys=True, separators=(",", ":")))


def json_equal(a: Any, b: Any) -> bool:
    """Structural equality of JSON values, keeping booleans apart from numbers."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict | list) or isinstance(b, dict | list):
        return False
    return scalar_key(a) == scalar_key(b)


def _go_repr(value: Any) -> str:
    """Render a value like Go's ``%v`` of decoded JSON, for upstream-worded messages."""
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{_go_repr(value[k])}" for k in sorted(value)) + "]"
    if isinstance(value, list):
        return "[" + " ".join(_go_repr(v) for v in value) + "]"
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _is_directive_key(key: str) -> bool:
    return (
        key in (PATCH_DIRECTIVE, RETAIN_KEYS_DIRECTIVE)
        or key.startswith(SET_ELEMENT_ORDER_PREFIX)
        or key.startswith(DELETE_FROM_PRIMITIVE_LIST_PREFIX)
    )


def _strip_directives(value: Any) -> Any:
    """A copy of ``value`` without directive keys (for values taken verbatim)."""
    if isinstance(value, dict):
        return {k: _strip_directives(v) for k, v in value.items() if not _is_directive_key(k)}
    if isinstance(value, list):
        return [_strip_directives(v) for v in value]
    return value


# --------------------------------------------------------------------------------------------
# Decoding and dispatch
# --------------------------------------------------------------------------------------------


def _reject_constant(name: str) -> Any:
    raise ValueError(f"invalid JSON number {name}")


def decode_json(body: bytes | str) -> Any:
    """Decode a request body as JSON; an undecodable body is a 400."""
    try:
        return json.loads(body, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PatchError(400, f"error decoding patch: {exc}") from None


def apply_patch(
    obj: dict[str, Any], body: bytes, content_type: str, definition: str | None
) -> dict[str, Any]:
    """Apply a PATCH request body of media type ``content_type`` to ``obj``.

    ``definition`` names the kind's schema; None (a custom resource) disables strategic merge.
    Server-side apply (``application/apply-patch+yaml``) is not handled here but by
    ``clusterapi.store.apply``.
    """
    media = content_type.split(";", 1)[0].strip().lower()
    if media == JSON_PATCH:
        ops = decode_json(body)
        if not isinstance(ops, list):
            raise PatchError(
                400, "json: cannot unmarshal object into Go value of type jsonpatch.Patch"
            )
        return json_patch(obj, ops)
    if media == MERGE_PATCH:
        patch = decode_json(body)
        if not isinstance(patch, dict):
            raise PatchError(400, "Invalid JSON Patch")
        return merge_patch(obj, patch)
    if media == STRATEGIC_MERGE_PATCH:
        # Content negotiation happens before the body is read: a custom resource answers 415
        # even for a malformed body, and kubectl then retries with a merge patch.
        if definition is None or root_node(definition) is None:
            raise PatchError(415, _unsupported_media_message(strategic=False))
        patch = decode_json(body)
        if not isinstance(patch, dict):
            raise PatchError(
                400, "json: cannot unmarshal into Go value of type map[string]interface {}"
            )
        return strategic_merge_patch(obj, patch, definition)
    raise PatchError(415, _unsupported_media_message(strategic=definition is not None))


def _unsupported_media_message(*, strategic: bool) -> str:
    accepted = [JSON_PATCH, MERGE_PATCH, APPLY_PATCH]
    if strategic:
        accepted.append(STRATEGIC_MERGE_PATCH)
    return (
        "the body of the request was in an unknown format - accepted media types include: "
        + ", ".join(accepted)
    )


# --------------------------------------------------------------------------------------------
# JSON patch (RFC 6902)
# --------------------------------------------------------------------------------------------


def json_patch(obj: dict[str, Any], ops: list[Any]) -> dict[str, Any]:
    """Apply RFC 6902 operations to a copy of ``obj``.

    Operations run one at a time so a failure can be reported for the operation that caused
    it, worded like the Go json-patch library the API server uses.
    """
    if not isinstance(ops, list):
        raise PatchError(400, "json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    doc: Any = clone(obj)
    for op in clone(ops):
        if not isinstance(op, dict):
            raise PatchError(
                400,
                f"json: cannot unmarshal {_json_type(op)} into Go value of type "
                "jsonpatch.Operation",
            )
        try:
            doc = jsonpatch.JsonPatch([op]).apply(doc, in_place=True)
        except jsonpatch.JsonPatchTestFailed:
            raise PatchError(422, f"testing value {op.get('path')} failed: test failed") from None
        except (jsonpatch.JsonPatchConflict, jsonpatch.JsonPointerException) as exc:
            raise PatchError(422, _json_patch_failure(op, exc)) from None
        except jsonpatch.InvalidJsonPatch as exc:
            kind = op.get("op")
            if isinstance(kind, str) and kind not in jsonpatch.JsonPatch.operations:
                raise PatchError(422, f"Unexpected kind: {kind}") from None
            raise PatchError(422, str(exc)) from None
        except (TypeError, KeyError, IndexError, AttributeError, ValueError) as exc:
            # Ill-typed members (a numeric path, a non-string op) reach the library's
            # internals; they are operation failures, answered like the others.
            raise PatchError(422, f"{op.get('op')} operation failed: {exc}") from None
    if not isinstance(doc, dict):
        raise PatchError(
            422, f"json: cannot unmarshal {_json_type(doc)} into Go value of type map[string]any"
        )
    return doc


def _json_type(value: Any) -> str:
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "bool"
    if value is None:
        return "null"
    return "number"


def _json_patch_failure(op: dict[str, Any], exc: Exception) -> str:
    """Upstream's message for an operation whose target (or source) does not exist."""
    kind, path, source = op.get("op"), op.get("path"), op.get("from")
    if kind == "add":
        if isinstance(exc, jsonpatch.JsonPatchConflict) and not isinstance(
            exc, jsonpatch.JsonPatchPathNotFound
        ):
            return f"error in add for path: '{path}': {exc}"
        return f'add operation does not apply: doc is missing path: "{path}": missing value'
    if kind == "remove":
        return f'remove operation does not apply: doc is missing path: "{path}": missing value'
    if kind == "replace":
        return f"replace operation does not apply: doc is missing key: {path}: missing value"
    if kind in ("move", "copy"):
        return f"{kind} operation does not apply: doc is missing from path: {source}: missing value"
    return f"{kind} operation does not apply: {exc}"


# --------------------------------------------------------------------------------------------
# JSON merge patch (RFC 7386)
# --------------------------------------------------------------------------------------------


def merge_patch(obj: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """Apply an RFC 7386 merge patch to a copy of ``obj``."""
    if not isinstance(patch, dict):
        raise PatchError(400, "Invalid JSON Patch")
    result = _merge_value(obj, patch)
    assert isinstance(result, dict)
    return result


def _merge_value(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return clone(patch)
    result = {k: clone(v) for k, v in target.items()} if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge_value(result.get(key), value)
    return result


# --------------------------------------------------------------------------------------------
# Strategic merge patch
# --------------------------------------------------------------------------------------------


def strategic_merge_patch(
    obj: dict[str, Any], patch: dict[str, Any], definition: str | None
) -> dict[str, Any]:
    """Apply a strategic merge patch to a copy of ``obj``, guided by ``definition``'s schema.

    An unknown ``definition`` degrades to merge-patch semantics (maps merge, lists replace),
    with the directives still honoured and removed.
    """
    if not isinstance(patch, dict):
        raise PatchError(
            400, "json: cannot unmarshal into Go value of type map[string]interface {}"
        )
    return _smp_map(clone(obj), patch, root_node(definition))


def _smp_value(current: Any, value: Any, node: SchemaNode | None) -> Any:
    """The merge of one patch value into the current value (or ``_MISSING``)."""
    if isinstance(value, dict):
        base = current if isinstance(current, dict) else {}
        if node is not None and node.patch_strategy == "replace":
            base = {}
        return _smp_map(base, value, node)
    if isinstance(value, list):
        return _smp_list(current if isinstance(current, list) else [], value, node)
    return value


def _smp_map(
    orig: dict[str, Any], patch: dict[str, Any], node: SchemaNode | None
) -> dict[str, Any]:
    """Merge map ``patch`` into ``orig`` (owned by the caller, mutated and returned)."""
    directive = patch.get(PATCH_DIRECTIVE, _MISSING)
    if directive is not _MISSING:
        if directive == "delete":
            # Upstream answers an empty map, which is what the field then holds.
            return {}
        if directive == "replace":
            orig = {}
        elif directive != "merge":
            raise PatchError(
                400, f"unknown patch type: {_go_repr(directive)} in map: {_go_repr(patch)}"
            )

    retain = patch.get(RETAIN_KEYS_DIRECTIVE, _MISSING)
    if retain is not _MISSING:
        if not isinstance(retain, list) or not all(isinstance(k, str) for k in retain):
            raise PatchError(400, _BAD_RETAIN_KEYS)
        keep = set(retain)
        for key, value in patch.items():
            if value is not None and not _is_directive_key(key) and key not in keep:
                raise PatchError(422, _RETAIN_KEYS_MISMATCH)
        # Union types: clearing the keys the patch does not retain drops the old member
        # (e.g. rollingUpdate when a Deployment's strategy becomes Recreate).
        for key in [k for k in orig if k not in keep]:
            del orig[key]

    # Lists with an ordering directive are merged together with their directive first, as
    # upstream's mergePatchIntoOriginal does; they are then skipped in the main loop.
    ordered: set[str] = set()
    for key, order in patch.items():
        if not key.startswith(SET_ELEMENT_ORDER_PREFIX):
            continue
        name = key.removeprefix(SET_ELEMENT_ORDER_PREFIX)
        if not name or not isinstance(order, list):
            raise PatchError(400, _BAD_ELEMENT_ORDER)
        ordered.add(name)
        child = node.field(name) if node is not None else None
        _apply_element_order(orig, name, order, patch.get(name, _MISSING), child)

    for key, value in patch.items():
        if key in (PATCH_DIRECTIVE, RETAIN_KEYS_DIRECTIVE) or key in ordered:
            continue
        if key.startswith(SET_ELEMENT_ORDER_PREFIX):
            continue
        if key.startswith(DELETE_FROM_PRIMITIVE_LIST_PREFIX):
            name = key.removeprefix(DELETE_FROM_PRIMITIVE_LIST_PREFIX)
            if not name or not isinstance(value, list):
                raise PatchError(400, _BAD_PRIMITIVE_LIST)
            current = orig.get(name)
            if isinstance(current, list):
                doomed = {scalar_key(v) for v in value}
                orig[name] = [v for v in current if scalar_key(v) not in doomed]
            continue
        if value is None:
            orig.pop(key, None)
            continue
        child = node.field(key) if node is not None else None
        orig[key] = _smp_value(orig.get(key, _MISSING), value, child)
    return orig


def _element_kind(value: Any) -> str:
    if isinstance(value, dict):
        return "map"
    if isinstance(value, list):
        return "list"
    return "scalar"


def _smp_list(orig: list[Any], patch: list[Any], node: SchemaNode | None) -> list[Any]:
    """Merge list ``patch`` into ``orig`` following the field's patch strategy."""
    item_node = node.items() if node is not None else None
    if node is None or node.patch_strategy != "merge":
        return [
            _clean_element(e, item_node)
            for e in patch
            if not (isinstance(e, dict) and e.get(PATCH_DIRECTIVE) == "delete")
        ]
    if not orig and not patch:
        return []
    kinds = {_element_kind(e) for e in orig} | {_element_kind(e) for e in patch}
    if "list" in kinds:
        raise PatchError(400, _NO_LIST_OF_LISTS)
    if len(kinds) > 1:
        raise PatchError(
            400, f"list element types are not identical: [{_go_repr(orig)} {_go_repr(patch)}]"
        )
    if kinds == {"scalar"}:
        return _merge_scalar_lists(orig, patch)
    if not node.merge_key:
        raise PatchError(400, "cannot merge lists without merge key")
    return _merge_map_lists(orig, patch, node.merge_key, item_node)


def _clean_element(element: Any, item_node: SchemaNode | None) -> Any:
    """An element of a replaced list: merged into nothing when its schema is known (which
    drops nulls and directives like the typed decode upstream does), verbatim otherwise."""
    if isinstance(element, dict) and item_node is not None:
        return _smp_map({}, element, item_node)
    return _strip_directives(element)


def _merge_scalar_lists(orig: list[Any], patch: list[Any]) -> list[Any]:
    """A primitive list with merge strategy is an ordered set: the union, deduplicated."""
    merged: list[Any] = []
    seen: set[Hashable] = set()
    for value in [*orig, *patch]:
        key = scalar_key(value)
        if key not in seen:
            seen.add(key)
            merged.append(value)
    return _order_merged(merged, patch, orig, scalar_key)


def _merge_map_lists(
    orig: list[Any], patch: list[Any], merge_key: str, item_node: SchemaNode | None
) -> list[Any]:
    """Merge lists of maps element by element on ``merge_key``."""

    def key_of(element: Any) -> Hashable:
        if isinstance(element, dict) and merge_key in element:
            return scalar_key(element[merge_key])
        return None

    replace = False
    regular: list[dict[str, Any]] = []
    for element in patch:
        directive = element.get(PATCH_DIRECTIVE, _MISSING)
        if directive is _MISSING:
            regular.append(element)
        elif directive == "delete":
            if merge_key not in element:
                raise PatchError(400, _no_merge_key(element, merge_key))
            doomed = scalar_key(element[merge_key])
            orig = [o for o in orig if key_of(o) != doomed]
        elif directive == "replace":
            replace = True
        elif directive == "merge":
            regular.append({k: v for k, v in element.items() if k != PATCH_DIRECTIVE})
        else:
            raise PatchError(
                400, f"unknown patch type: {_go_repr(directive)} in map: {_go_repr(element)}"
            )
    if replace:
        # "$patch: replace" as a list element: the list becomes the other elements.
        orig = []
    for element in regular:
        if merge_key not in element:
            raise PatchError(400, _no_merge_key(element, merge_key))

    merged = list(orig)
    position: dict[Hashable, int] = {}
    for i, element in enumerate(merged):
        key = key_of(element)
        if key is not None:
            position.setdefault(key, i)
    for element in regular:
        key = key_of(element)
        at = position.get(key)
        if at is not None:
            merged[at] = _smp_map(merged[at], element, item_node)
        else:
            position[key] = len(merged)
            merged.append(_smp_map({}, element, item_node))
    return _order_merged(merged, regular, orig, key_of)


def _no_merge_key(element: Any, merge_key: str) -> str:
    return f"map: {_go_repr(element)} does not contain declared merge key: {merge_key}"


def _order_merged(
    merged: list[Any],
    order: Iterable[Any],
    server: list[Any],
    key_of: Callable[[Any], Hashable],
) -> list[Any]:
    """Order a merged list: items named in ``order`` in that order, the others (server-only)
    in their order in ``server``, the two interleaved as upstream's normalizeElementOrder."""
    order_pos: dict[Hashable, int] = {}
    for i, element in enumerate(order):
        order_pos.setdefault(key_of(element), i)
    server_pos: dict[Hashable, int] = {}
    for i, element in enumerate(server):
        server_pos.setdefault(key_of(element), i)
    named = [m for m in merged if key_of(m) in order_pos]
    named.sort(key=lambda m: order_pos[key_of(m)])
    server_only = [m for m in merged if key_of(m) not in order_pos]
    server_only.sort(key=lambda m: server_pos.get(key_of(m), len(server)))
    return _interleave(server_only, named, server_pos, key_of)


def _interleave(
    server_only: list[Any],
    named: list[Any],
    server_pos: dict[Hashable, int],
    key_of: Callable[[Any], Hashable],
) -> list[Any]:
    """Merge two ordered lists; a server-only item goes first only when both items are on
    the server and it was in front there. New items thus land before the server-only items
    that follow them, exactly as upstream's mergeSortedSlice places them."""
    out: list[Any] = []
    i = j = 0
    while i < len(server_only) or j < len(named):
        if j >= len(named):
            out.append(server_only[i])
            i += 1
            continue
        if i >= len(server_only):
            out.append(named[j])
            j += 1
            continue
        left = server_pos.get(key_of(server_only[i]))
        right = server_pos.get(key_of(named[j]))
        if left is not None and right is not None and left < right:
            out.append(server_only[i])
            i += 1
        else:
            out.append(named[j])
            j += 1
    return out


def _apply_element_order(
    orig: dict[str, Any], name: str, order: list[Any], patch_value: Any, node: SchemaNode | None
) -> None:
    """Merge list ``name`` (if patched) and sort it by its ``$setElementOrder`` list."""
    if patch_value is None:
        orig.pop(name, None)
        return
    if patch_value is not _MISSING and not isinstance(patch_value, list):
        raise PatchError(400, _BAD_ELEMENT_ORDER)
    current = orig.get(name, _MISSING)
    if current is not _MISSING and not isinstance(current, list):
        current = _MISSING
    merge_key = node.merge_key if node is not None else None
    maps = any(isinstance(e, dict) for e in order)
    if maps and not merge_key:
        raise PatchError(400, _BAD_ELEMENT_ORDER)
    key_of = _keyed_by(merge_key) if maps else scalar_key
    if maps:
        for element in order:
            if not isinstance(element, dict) or merge_key not in element:
                raise PatchError(400, _no_merge_key(element, merge_key or ""))
    patch_list = patch_value if isinstance(patch_value, list) else []
    _validate_element_order(patch_list, order, key_of)

    if current is _MISSING and patch_value is _MISSING:
        return
    server = current if isinstance(current, list) else []
    merged = _smp_list(server, patch_list, node) if patch_value is not _MISSING else server
    orig[name] = _order_merged(merged, order, server, key_of)


def _keyed_by(merge_key: str | None) -> Callable[[Any], Hashable]:
    def key_of(element: Any) -> Hashable:
        if isinstance(element, dict) and merge_key in element:
            return scalar_key(element[merge_key])
        return None

    return key_of


def _validate_element_order(
    patch_list: list[Any], order: list[Any], key_of: Callable[[Any], Hashable]
) -> None:
    """The patch list must be a subsequence of the order list (deletions aside)."""
    if not patch_list or not order:
        return
    items = [e for e in patch_list if not (isinstance(e, dict) and PATCH_DIRECTIVE in e)]
    p = o = 0
    while p < len(items) and o < len(order):
        if key_of(items[p]) == key_of(order[o]):
            p += 1
        o += 1
    if p < len(items):
        raise PatchError(
            400,
            f"The order in patch list:\n{_go_repr(patch_list)}\n doesn't match "
            f"{SET_ELEMENT_ORDER_PREFIX.rstrip('/')} list:\n{_go_repr(order)}\n",
        )
