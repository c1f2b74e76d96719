"""Server-side apply and field ownership (``metadata.managedFields``).

Kubernetes records, for every object, which *field manager* owns which fields. Two kinds of
writes change that record:

* an ordinary create, update or (non-apply) patch is an ``Update``: the writer becomes the
  owner of every field it changed, and those fields leave the other managers' sets. This is
  ``record_update``, which the store calls on every such write;
* a server-side apply (``PATCH`` with ``application/apply-patch+yaml``) is an ``Apply``: the
  applied configuration states the *complete* set of fields the manager cares about. This is
  ``server_side_apply``, which the store calls inside its read-modify-write loop.

``server_side_apply`` runs in this order, following the Server-Side Apply documentation and
the behaviour of structured-merge-diff:

1. The applied configuration is merged into the live object using the schema's list and map
   types: ``x-kubernetes-list-type: map`` lists merge item by item on their
   ``x-kubernetes-list-map-keys`` (containers by name, ports by port and protocol), ``set``
   lists merge by value, ``atomic`` lists and ``x-kubernetes-map-type: atomic`` maps are
   replaced whole; without list-type annotations a ``merge`` patch strategy implies a map
   (with the patch merge key) or a set, anything else is atomic. Live-only list items keep
   their place, applied items come in the applied order.
2. Conflicts: a field that the merge adds or changes and that another manager owns is a
   conflict; without ``force`` nothing is written and ``ApplyConflict`` carries Kubernetes'
   message. With ``force`` the other managers lose those fields. Applying the value a field
   already has is no change, hence no conflict: the field becomes shared.
3. Pruning: fields the manager applied last time and no longer applies are removed, unless
   another manager owns them too; structs left empty by that removal go as well.
4. ``metadata.managedFields`` is rewritten: the applier's ``Apply`` entry holds exactly the
   fields of this configuration, stale paths leave the other entries, empty entries are
   dropped, and entries are sorted as the API server sorts them. The entry's time changes
   only when the object changes, so applying the same manifest twice yields an identical
   object (and the store keeps its resourceVersion).

Field sets are handled as Python sets of paths; a path is a tuple of FieldsV1 path elements:
``f:<field>``, ``k:<json of the list-map keys>`` (sorted keys, compact JSON, e.g.
``k:{"containerPort":80,"protocol":"TCP"}``) and ``v:<json value>`` for set items. A path is
in a set when its field is owned: scalars, atomic lists and maps, empty maps and lists, and
list items. ``fields_to_paths``/``paths_to_fields`` convert from and to the FieldsV1 tree,
where an owned node that also has children carries ``".": {}``.

Ownership ignores what the API server ignores (``stripmeta``): ``apiVersion``, ``kind``,
``metadata.name``/``namespace``/``uid``/``resourceVersion``/``generation``/
``creationTimestamp``/``selfLink``/``managedFields``, and ``status`` for the main resource
(``subresource=""``).

Known gaps (kept deliberately simple):

* The object is JSON, not Go structs: an ``Update`` that adds a struct does not own the
  struct itself (upstream owns pointer structs, ``.: {}``); free-form maps such as labels are
  owned as upstream does. Lists are never owned as containers, only their items.
* A list-map item without its key fields falls back to an index element ``i:<n>``; the only
  key default known is ``protocol: TCP`` (ports), which upstream takes from OpenAPI defaults.
* Explicit ``null`` values in an applied configuration are treated as absent; a
  ``metadata.managedFields`` in it is ignored (upstream rejects it).
* No cap on the number of ``Update`` managers (upstream folds the oldest into
  ``ancient-changes``), no version conversion of field sets, no ``x-kubernetes-unions``.
* A removed list item whose fields another manager also owns keeps those fields (and its
  keys); upstream rebuilds the item from the other manager's fields the same way.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, NamedTuple

from clusterapi.resources import schemas
from clusterapi.store.patch import SchemaNode, clone, json_equal, root_node

Path = tuple[str, ...]

APPLY: Final = "Apply"
UPDATE: Final = "Update"

# Defaults of list-map key fields, which upstream reads from the OpenAPI ``default``s that the
# JSON schemas Berth bundles do not carry.
_KEY_DEFAULTS: Final[dict[str, Any]] = {"protocol": "TCP"}

# Paths never owned by anyone (apiserver's stripmeta): exact ones, and whole subtrees.
_STRIP_EXACT: Final = frozenset({("f:apiVersion",), ("f:kind",), ("f:metadata",)})
# Every stripped subtree is a metadata field: a path is in one when its first two steps are.
_STRIP_SUBTREES: Final = frozenset(
    ("f:metadata", "f:" + name)
    for name in (
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "selfLink",
        "clusterName",
        "managedFields",
    )
)
_STATUS: Final = ("f:status",)

# Kinds of flattened nodes: a LEAF has a value (scalar, atomic or empty map/list, set item),
# an ITEM is a list-map item, a MAP a free-form map and a STRUCT any other container. Only
# leaves and items are owned by an Apply; an Update that adds a free-form map owns it too.
_LEAF, _ITEM, _MAP, _STRUCT = range(4)


class ApplyConflict(Exception):
    """An apply that would change fields other managers own (HTTP 409 Conflict)."""

    code: Final = 409
    reason: Final = "Conflict"

    def __init__(
        self, conflicts: list[tuple[str, str]], message: str, causes: list[dict[str, str]]
    ) -> None:
        super().__init__(message)
        self.conflicts = conflicts
        self.message = message
        # Status details causes, as upstream: reason FieldManagerConflict, message, field.
        self.causes = causes


# --------------------------------------------------------------------------------------------
# Path elements and FieldsV1
# --------------------------------------------------------------------------------------------


def _compact(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _value_element(value: Any) -> str:
    return "v:" + _compact(value)


def _key_element(item: Any, keys: tuple[str, ...], index: int) -> str:
    fields: dict[str, Any] = {}
    if isinstance(item, dict):
        for key in keys:
            if key in item:
                fields[key] = item[key]
            elif key in _KEY_DEFAULTS:
                fields[key] = _KEY_DEFAULTS[key]
    if not fields:
        return f"i:{index}"
    return "k:" + _compact(fields)


@functools.lru_cache(maxsize=4096)
def _normalize_element(element: str) -> str:
    """Re-encode ``k:``/``v:`` elements so equal keys compare equal whatever their spelling.
    (Cached: every write reads every manager's set back, and the elements repeat.)"""
    tag, sep, rest = element.partition(":")
    if sep and tag in ("k", "v"):
        try:
            return f"{tag}:" + _compact(json.loads(rest))
        except ValueError:
            return element
    return element


# Field names, then keys, then values, then indexes, like fieldpath.PathElement ordering.
_ELEMENT_ORDER: Final = {"f": 0, "k": 1, "v": 2, "i": 3}


def _element_sort_key(element: str) -> tuple[int, str]:
    return (_ELEMENT_ORDER.get(element[:1], 4), element)


def fields_to_paths(fields: Any) -> set[Path]:
    """The owned paths of a FieldsV1 tree."""
    out: set[Path] = set()

    def walk(node: dict[str, Any], prefix: Path) -> None:
        for key, child in node.items():
            if key == ".":
                if prefix:
                    out.add(prefix)
                continue
            path = (*prefix, _normalize_element(key))
            if isinstance(child, dict) and child:
                walk(child, path)
            else:
                out.add(path)

    if isinstance(fields, dict):
        walk(fields, ())
    return out


# Marks an owned node in paths_to_fields' tree; not a string, so never a path element.
_OWNED: Final = 0


def paths_to_fields(paths: Iterable[Path]) -> dict[str, Any]:
    """The FieldsV1 tree of a set of owned paths (children sorted, ``.`` first)."""
    tree: dict[Any, Any] = {}
    for path in paths:
        node = tree
        for element in path:
            child = node.get(element)
            if child is None:
                child = node[element] = {}
            node = child
        node[_OWNED] = True
    return _render(tree)


def _render(node: dict[Any, Any]) -> dict[str, Any]:
    owned = node.pop(_OWNED, False)
    out: dict[str, Any] = {}
    if owned and node:
        out["."] = {}
    # Most nodes have one child or none: nothing to sort.
    for element in sorted(node, key=_element_sort_key) if len(node) > 1 else node:
        out[element] = _render(node[element])
    return out


def _to_string(value: Any) -> str:
    """A key or set value as structured-merge-diff prints it (strings quoted)."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int | float):
        return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
    return _compact(value)


def path_string(path: Path) -> str:
    """A path as Kubernetes prints it: ``.spec.containers[name="c"].image``."""
    parts: list[str] = []
    for element in path:
        tag, _, rest = element.partition(":")
        if tag == "f":
            parts.append("." + rest)
        elif tag == "k":
            try:
                keys = json.loads(rest)
            except ValueError:
                keys = None
            if isinstance(keys, dict):
                parts.append(
                    "[" + ",".join(f"{k}={_to_string(keys[k])}" for k in sorted(keys)) + "]"
                )
            else:
                parts.append(f"[{rest}]")
        elif tag == "v":
            try:
                parts.append("[=" + _to_string(json.loads(rest)) + "]")
            except ValueError:
                parts.append(f"[={rest}]")
        else:
            parts.append(f"[{rest}]")
    return "".join(parts)


# --------------------------------------------------------------------------------------------
# Schema-driven walking
# --------------------------------------------------------------------------------------------


def _list_kind(node: SchemaNode | None, values: Iterable[Any]) -> str:
    """``map``, ``set`` or ``atomic``: how apply treats a list (see the module docstring)."""
    if node is None:
        return "atomic"
    kind = node.list_type
    if kind not in ("atomic", "set", "map"):
        # No list-type annotation: a merge patch strategy implies an associative list.
        merging = node.patch_strategy == "merge"
        kind = ("map" if node.merge_key else "set") if merging else "atomic"
    if kind == "map" and (not _list_keys(node) or not all(isinstance(v, dict) for v in values)):
        return "atomic"
    return kind


def _list_keys(node: SchemaNode) -> tuple[str, ...]:
    if node.list_map_keys:
        return node.list_map_keys
    return (node.merge_key,) if node.merge_key else ()


def _child(node: SchemaNode | None, key: str) -> SchemaNode | None:
    return node.field(key) if node is not None else None


class _Flat(NamedTuple):
    kind: int
    value: Any = None


def _owned_roots(
    obj: dict[str, Any], root: SchemaNode | None, *, ignore_status: bool
) -> Iterator[tuple[Any, SchemaNode | None, Path]]:
    """The subtrees of ``obj`` that managers can own: (value, schema node, path) of each
    top-level field and of each of metadata's own fields.

    The unowned subtrees (``status`` when ignored, ``metadata``'s server fields) are not
    given at all: they are most of a pod's status updates."""
    for key, value in obj.items():
        if ignore_status and key == "status":
            continue
        node = _child(root, key)
        if key == "metadata" and isinstance(value, dict) and value:
            for name, child in value.items():
                meta_path: Path = ("f:metadata", "f:" + name)
                if meta_path not in _STRIP_SUBTREES:
                    yield child, _child(node, name), meta_path
            continue
        yield value, node, ("f:" + key,)


def _flatten(
    obj: dict[str, Any], root: SchemaNode | None, *, ignore_status: bool
) -> dict[Path, _Flat]:
    """Every node of ``obj`` by path (the root excluded), minus the unowned paths."""
    out: dict[Path, _Flat] = {}
    for value, node, path in _owned_roots(obj, root, ignore_status=ignore_status):
        _walk(value, node, path, out)
    for path in _STRIP_EXACT:
        out.pop(path, None)
    return out


def _walk(value: Any, node: SchemaNode | None, path: Path, out: dict[Path, _Flat]) -> None:
    if isinstance(value, dict):
        if not value or (node is not None and node.map_type == "atomic"):
            out[path] = _Flat(_LEAF, value)
            return
        free_form = node is None or node.is_free_form_map
        out[path] = _Flat(_MAP if free_form else _STRUCT)
        for key, child in value.items():
            _walk(child, _child(node, key), (*path, "f:" + key), out)
        return
    if isinstance(value, list):
        kind = _list_kind(node, value)
        if not value or kind == "atomic":
            out[path] = _Flat(_LEAF, value)
            return
        out[path] = _Flat(_STRUCT)
        if kind == "set":
            for item in value:
                out[(*path, _value_element(item))] = _Flat(_LEAF, item)
            return
        assert node is not None
        keys, item_node = _list_keys(node), node.items()
        for index, item in enumerate(value):
            item_path = (*path, _key_element(item, keys, index))
            out[item_path] = _Flat(_ITEM)
            for key, child in item.items():
                _walk(child, _child(item_node, key), (*item_path, "f:" + key), out)
        return
    out[path] = _Flat(_LEAF, value)


def created_fields(
    obj: dict[str, Any], root: SchemaNode | None, *, ignore_status: bool
) -> dict[str, Any]:
    """The FieldsV1 tree of every owned path of ``obj``: what its creator manages.

    The same tree as ``paths_to_fields`` of the non-STRUCT paths ``_flatten`` finds, built
    in one walk: the paths, their sets and the render from them were 0.2 ms of every create.
    """
    tree: dict[Any, Any] = {}
    for value, node, path in _owned_roots(obj, root, ignore_status=ignore_status):
        target = tree
        for element in path:
            target = target.setdefault(element, {})
        _grow(value, node, target)
    for (element,) in _STRIP_EXACT:
        stripped = tree.get(element)
        if stripped is not None:
            stripped.pop(_OWNED, None)
            if not stripped:
                del tree[element]
    return _render(tree)


def _grow(value: Any, node: SchemaNode | None, tree: dict[Any, Any]) -> None:
    """Mark what ``value`` owns in ``tree``, its node in the tree (``_walk``'s rules)."""
    if isinstance(value, dict):
        if not value or (node is not None and node.map_type == "atomic"):
            tree[_OWNED] = True
            return
        if node is None or node.is_free_form_map:
            tree[_OWNED] = True
        for key, child in value.items():
            _grow(child, _child(node, key), tree.setdefault("f:" + key, {}))
        return
    if isinstance(value, list):
        kind = _list_kind(node, value)
        if not value or kind == "atomic":
            tree[_OWNED] = True
            return
        if kind == "set":
            for item in value:
                tree.setdefault(_value_element(item), {})[_OWNED] = True
            return
        assert node is not None
        keys, item_node = _list_keys(node), node.items()
        for index, item in enumerate(value):
            element = tree.setdefault(_key_element(item, keys, index), {})
            element[_OWNED] = True
            for key, child in item.items():
                _grow(child, _child(item_node, key), element.setdefault("f:" + key, {}))
        return
    tree[_OWNED] = True


def _compare(
    old: dict[Path, _Flat], new: dict[Path, _Flat]
) -> tuple[set[Path], set[Path], set[Path]]:
    """(added, modified, removed) paths between two flattened objects."""
    added = {p for p in new if p not in old}
    removed = {p for p in old if p not in new}
    modified: set[Path] = set()
    for path, after in new.items():
        before = old.get(path)
        if before is None or (before.kind != _LEAF and after.kind != _LEAF):
            continue
        if before.kind != after.kind or not json_equal(before.value, after.value):
            modified.add(path)
    return added, modified, removed


def _applied_paths(flat: dict[Path, _Flat]) -> set[Path]:
    """The fields an applied configuration claims (upstream's ToFieldSet)."""
    return {p for p, e in flat.items() if e.kind in (_LEAF, _ITEM)}


# --------------------------------------------------------------------------------------------
# Managers
# --------------------------------------------------------------------------------------------


@dataclass(eq=False)
class _Manager:
    manager: str
    operation: str
    api_version: str
    subresource: str = ""
    time: str | None = None
    paths: set[Path] = field(default_factory=set)
    # The entry's FieldsV1 tree as read, and the tree to write as it is instead of rendering
    # ``paths`` again (set only by a caller that knows ``paths`` did not change).
    read_fields: dict[str, Any] | None = None
    fields: dict[str, Any] | None = None

    def identity(self) -> tuple[str, str, str, str]:
        # Appliers are one manager whatever the version they apply; updaters are per version.
        version = "" if self.operation == APPLY else self.api_version
        return (self.manager, self.operation, version, self.subresource)

    def describe(self) -> str:
        """The manager as upstream's printManager writes it in conflict messages."""
        text = json.dumps(self.manager, ensure_ascii=False)
        if self.subresource:
            text += f" with subresource {json.dumps(self.subresource, ensure_ascii=False)}"
        if self.operation == UPDATE:
            text += f" using {self.api_version}"
        return text

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "manager": self.manager,
            "operation": self.operation,
            "apiVersion": self.api_version,
        }
        if self.time:
            out["time"] = self.time
        out["fieldsType"] = "FieldsV1"
        out["fieldsV1"] = self.fields if self.fields is not None else paths_to_fields(self.paths)
        if self.subresource:
            out["subresource"] = self.subresource
        return out


def _read_managers(entries: Any) -> list[_Manager]:
    managers: list[_Manager] = []
    by_identity: dict[tuple[str, str, str, str], _Manager] = {}
    if not isinstance(entries, list):
        return managers
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("manager"), str):
            continue
        time = entry.get("time")
        fields = entry.get("fieldsV1")
        manager = _Manager(
            manager=entry["manager"],
            operation=str(entry.get("operation") or UPDATE),
            api_version=str(entry.get("apiVersion") or ""),
            subresource=str(entry.get("subresource") or ""),
            time=time if isinstance(time, str) else None,
            paths=fields_to_paths(fields),
            read_fields=fields if isinstance(fields, dict) else None,
        )
        twin = by_identity.get(manager.identity())
        if twin is not None:
            twin.paths |= manager.paths
            twin.read_fields = None
            continue
        by_identity[manager.identity()] = manager
        managers.append(manager)
    return managers


def _time_key(time: str | None) -> float:
    if not time:
        return 0.0
    try:
        return datetime.fromisoformat(time.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def _managers_json(managers: list[_Manager]) -> list[dict[str, Any]]:
    """The non-empty entries, ordered as the API server orders them."""
    kept = [m for m in managers if m.paths]
    kept.sort(
        key=lambda m: (m.operation, _time_key(m.time), m.manager, m.api_version, m.subresource)
    )
    return [m.to_json() for m in kept]


def _write_managers(obj: dict[str, Any], managers: list[_Manager]) -> None:
    meta = obj.setdefault("metadata", {})
    entries = _managers_json(managers)
    if entries:
        meta["managedFields"] = entries
    else:
        meta.pop("managedFields", None)


def _without(obj: dict[str, Any], keys: set[str]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in keys} if keys else obj


def _without_managed_fields(obj: dict[str, Any]) -> dict[str, Any]:
    out = dict(obj)
    meta = out.get("metadata")
    if isinstance(meta, dict) and "managedFields" in meta:
        out["metadata"] = {k: v for k, v in meta.items() if k != "managedFields"}
    return out


def _definition_of(obj: dict[str, Any]) -> str | None:
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    if not isinstance(api_version, str) or not isinstance(kind, str):
        return None
    group, _, version = api_version.rpartition("/")
    return schemas.definition_name(group, version, kind)


# --------------------------------------------------------------------------------------------
# Update
# --------------------------------------------------------------------------------------------


def record_update(
    old: dict[str, Any] | None,
    new: dict[str, Any],
    manager: str,
    *,
    api_version: str,
    now: str,
    operation: str = UPDATE,
    subresource: str = "",
    definition: str | None = None,
) -> dict[str, Any]:
    """A copy of ``new`` with ``metadata.managedFields`` recording that ``manager`` changed
    it (``managed_fields_after_update``)."""
    result = clone(new)
    meta = result.get("metadata")
    if not isinstance(meta, dict):
        return result
    entries = managed_fields_after_update(
        old,
        new,
        manager,
        api_version=api_version,
        now=now,
        operation=operation,
        subresource=subresource,
        definition=definition,
    )
    if entries:
        meta["managedFields"] = entries
    else:
        meta.pop("managedFields", None)
    return result


def managed_fields_after_update(
    old: dict[str, Any] | None,
    new: dict[str, Any],
    manager: str,
    *,
    api_version: str,
    now: str,
    operation: str = UPDATE,
    subresource: str = "",
    definition: str | None = None,
) -> list[dict[str, Any]]:
    """The ``metadata.managedFields`` of ``new`` once ``manager`` has changed ``old`` into it.

    The manager gains every field that ``old`` → ``new`` adds or modifies (on create, with
    ``old=None``, every field), the other managers lose them, and fields that no longer exist
    leave every set. The managers are read from ``new`` when it carries a non-empty list
    (a client may set them), else from ``old``, as upstream does. ``definition`` defaults to
    the schema named by ``new``'s apiVersion and kind. Neither object is changed.
    """
    meta = new.get("metadata")
    if not isinstance(meta, dict):
        return []
    ignore_status = subresource != "status"
    root = root_node(definition or _definition_of(new))
    old_meta = (old or {}).get("metadata")
    old_entries = old_meta.get("managedFields") if isinstance(old_meta, dict) else None
    entries = meta.get("managedFields")
    # The entries are the stored ones (written by this module, in canonical form) unless the
    # writer sent others: a read-modify-write usually carries the stored list unchanged.
    stored = not (isinstance(entries, list) and entries) or entries == old_entries
    if not (isinstance(entries, list) and entries):
        if old is None:
            # A create that brings no entries: the manager owns every field it wrote.
            fields = created_fields(new, root, ignore_status=ignore_status)
            if not fields:
                return []
            me = _Manager(manager, operation, api_version, subresource, time=now, fields=fields)
            return [me.to_json()]
        entries = old_entries
    managers = _read_managers(entries)

    old_plain = _without_managed_fields(old or {})
    new_plain = _without_managed_fields(new)
    # Only the top-level fields that differ are walked when the entries are the stored ones
    # (a status update walks the status, not the pod); the fields left alone, and the status
    # of a main-resource write, keep their owners as they are.
    skipped = {key for key in new_plain if ignore_status and key == "status"}
    if stored and old is not None:
        skipped |= {key for key, value in new_plain.items() if old_plain.get(key) == value}
    before = _flatten(_without(old_plain, skipped), root, ignore_status=ignore_status)
    after = _flatten(_without(new_plain, skipped), root, ignore_status=ignore_status)
    added, modified, _ = _compare(before, after)
    changed = {p for p in added if after[p].kind != _STRUCT} | modified
    untouched = {"f:" + key for key in skipped}

    def still_there(path: Path) -> bool:
        return path in after or path[0] in untouched

    me = _Manager(manager, operation, api_version, subresource)
    identity = me.identity()
    found = next((m for m in managers if m.identity() == identity), None)
    for other in managers:
        mine = other.paths if other is found else other.paths - changed
        kept = {path for path in mine if still_there(path)}
        # An entry read from the stored object whose set did not change is written back as
        # it was (the store wrote it in canonical form): rendering every manager's tree
        # again on every write cost more than the rest of this function.
        if stored and len(kept) == len(other.paths):
            other.fields = other.read_fields
        other.paths = kept
    if changed:
        if found is None:
            managers.append(me)
            found = me
        found.paths |= changed
        found.fields = None
        found.time = now
    return _managers_json(managers)


# --------------------------------------------------------------------------------------------
# Apply
# --------------------------------------------------------------------------------------------


def server_side_apply(
    live: dict[str, Any] | None,
    applied: dict[str, Any],
    manager: str,
    *,
    force: bool,
    definition: str | None,
    api_version: str,
    now: str,
    subresource: str = "",
) -> dict[str, Any]:
    """The object after ``manager`` applies ``applied`` to ``live`` (None: create).

    Raises ``ApplyConflict`` when the apply changes fields other managers own and ``force``
    is false. See the module docstring for the steps.
    """
    ignore_status = subresource != "status"
    root = root_node(definition)
    config = _prepare_config(applied, ignore_status)
    current = _without_managed_fields(live) if live else {}
    live_meta = (live or {}).get("metadata")
    managers = _read_managers(
        live_meta.get("managedFields") if isinstance(live_meta, dict) else None
    )

    merged = _apply_merge(current, config, root)
    assert isinstance(merged, dict)
    before = _flatten(current, root, ignore_status=ignore_status)
    after = _flatten(merged, root, ignore_status=ignore_status)
    added, modified, _ = _compare(before, after)
    changed = added | modified

    me = _Manager(manager, APPLY, api_version, subresource)
    found = next((m for m in managers if m.identity() == me.identity()), None)
    conflicts = {
        other: other.paths & changed
        for other in managers
        if other is not found and other.paths & changed
    }
    if conflicts and not force:
        raise _conflict_error(conflicts)
    for other, paths in conflicts.items():
        other.paths -= paths

    applied_paths = _applied_paths(_flatten(config, root, ignore_status=ignore_status))
    previous = found.paths if found is not None else set()
    result = merged
    if previous - applied_paths:
        keep = set(applied_paths)
        for other in managers:
            if other is not found:
                keep |= other.paths
        pruned = _prune(merged, _tree(previous), _tree(keep), root)
        assert isinstance(pruned, dict)
        result = pruned

    existing = set(_flatten(result, root, ignore_status=ignore_status))
    for other in managers:
        if other is not found:
            other.paths &= existing
    if found is None:
        managers.append(me)
        found = me
        found.time = now
    elif not json_equal(result, current):
        found.time = now
    found.paths = applied_paths
    found.api_version = api_version
    _write_managers(result, managers)
    return result


def _prepare_config(applied: dict[str, Any], ignore_status: bool) -> dict[str, Any]:
    """The applied configuration without nulls, managedFields and (main resource) status."""
    config = _drop_nulls(applied)
    assert isinstance(config, dict)
    meta = config.get("metadata")
    if isinstance(meta, dict):
        meta.pop("managedFields", None)
    if ignore_status:
        config.pop("status", None)
    return config


def _drop_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value]
    return value


class _Absent:
    pass


_ABSENT: Final = _Absent()


def _apply_merge(live: Any, applied: Any, node: SchemaNode | None) -> Any:
    """Merge an applied value into a live one: the applied leaves win, the rest is kept."""
    if isinstance(applied, dict) and isinstance(live, dict):
        if node is not None and node.map_type == "atomic":
            return clone(applied)
        out: dict[str, Any] = {}
        for key, value in live.items():
            if key in applied:
                out[key] = _apply_merge(value, applied[key], _child(node, key))
            else:
                out[key] = clone(value)
        for key, value in applied.items():
            if key not in live:
                out[key] = clone(value)
        return out
    if isinstance(applied, list) and isinstance(live, list):
        kind = _list_kind(node, [*live, *applied])
        if kind == "set":
            return _merge_items(
                live, applied, lambda v, _i: _value_element(v), lambda _l, r: clone(r)
            )
        if kind == "map":
            assert node is not None
            keys, item_node = _list_keys(node), node.items()
            return _merge_items(
                live,
                applied,
                lambda v, i: _key_element(v, keys, i),
                lambda lv, rv: _apply_merge(lv, rv, item_node),
            )
    return clone(applied)


def _merge_items(
    lhs: list[Any],
    rhs: list[Any],
    key_of: Callable[[Any, int], str],
    merge: Callable[[Any, Any], Any],
) -> list[Any]:
    """Merge associative lists: live-only items stay where they are, applied items follow
    the applied order (shared items move to their applied position)."""
    lkeys = [key_of(v, i) for i, v in enumerate(lhs)]
    rkeys = [key_of(v, i) for i, v in enumerate(rhs)]
    lmap: dict[str, Any] = {}
    for key, value in zip(lkeys, lhs, strict=True):
        lmap.setdefault(key, value)
    rmap = dict(zip(rkeys, rhs, strict=True))
    shared = [k for k in dict.fromkeys(rkeys) if k in lmap]
    next_shared = 0
    done: set[str] = set()
    out: list[Any] = []
    li = ri = 0
    while li < len(lhs) or ri < len(rkeys):
        if li < len(lhs):
            lk = lkeys[li]
            if lk in done:
                li += 1
                continue
            if lk not in rmap:
                out.append(clone(lhs[li]))
                li += 1
                continue
            if ri < len(rkeys) and rkeys[ri] == lk:
                out.append(merge(lmap[lk], rmap[lk]))
                done.add(lk)
                li += 1
                ri += 1
                while next_shared < len(shared) and shared[next_shared] in done:
                    next_shared += 1
                continue
            if next_shared < len(shared) and shared[next_shared] != lk:
                # A shared item the applied order wants later: it is emitted then.
                li += 1
                continue
        if ri < len(rkeys):
            rk = rkeys[ri]
            ri += 1
            if rk in done:
                continue
            out.append(merge(lmap.get(rk, _ABSENT), rmap[rk]))
            done.add(rk)
            while next_shared < len(shared) and shared[next_shared] in done:
                next_shared += 1
            continue
        li += 1  # unreachable in practice: every shared item is emitted from the rhs walk
    return out


# --------------------------------------------------------------------------------------------
# Pruning
# --------------------------------------------------------------------------------------------


class _Node:
    __slots__ = ("children", "member")

    def __init__(self) -> None:
        self.member = False
        self.children: dict[str, _Node] = {}


def _tree(paths: Iterable[Path]) -> _Node:
    root = _Node()
    for path in paths:
        node = root
        for element in path:
            node = node.children.setdefault(element, _Node())
        node.member = True
    return root


class _Drop:
    pass


_DROP: Final = _Drop()


def _prune(value: Any, previous: _Node, keep: _Node | None, node: SchemaNode | None) -> Any:
    """``value`` without the fields only the applier owned (``previous`` minus ``keep``)."""
    if isinstance(value, dict):
        if node is not None and node.map_type == "atomic":
            return value
        out: dict[str, Any] = {}
        for key, child in value.items():
            kept = _prune_child(child, "f:" + key, previous, keep, _child(node, key), ())
            if kept is not _DROP:
                out[key] = kept
        return out
    if isinstance(value, list):
        kind = _list_kind(node, value)
        if kind == "atomic":
            return value
        items: list[Any] = []
        if kind == "set":
            for item in value:
                kept = _prune_child(item, _value_element(item), previous, keep, None, ())
                if kept is not _DROP:
                    items.append(kept)
            return items
        assert node is not None
        keys, item_node = _list_keys(node), node.items()
        for index, item in enumerate(value):
            element = _key_element(item, keys, index)
            kept = _prune_child(item, element, previous, keep, item_node, keys)
            if kept is not _DROP:
                items.append(kept)
        return items
    return value


def _prune_child(
    value: Any,
    element: str,
    previous: _Node,
    keep: _Node | None,
    node: SchemaNode | None,
    item_keys: tuple[str, ...],
) -> Any:
    mine = previous.children.get(element)
    if mine is None:
        return value  # never applied by this manager: not ours to remove
    theirs = keep.children.get(element) if keep is not None else None
    if theirs is not None and theirs.member:
        return value  # still owned (by another manager, or applied again)
    if mine.member and theirs is None:
        return _DROP
    if not isinstance(value, dict | list) or not mine.children:
        return value
    pruned = _prune(value, mine, theirs, node)
    if isinstance(value, dict) and item_keys:
        # An item kept for another manager's fields keeps its keys, in their place.
        pruned = {k: pruned.get(k, v) for k, v in value.items() if k in pruned or k in item_keys}
    if theirs is None and value and not pruned:
        return _DROP  # a struct emptied by the removal goes too
    return pruned


# --------------------------------------------------------------------------------------------
# Conflicts
# --------------------------------------------------------------------------------------------


def _path_sort_key(path: Path) -> tuple[tuple[int, str], ...]:
    return tuple(_element_sort_key(e) for e in path)


def _conflict_error(conflicts: dict[_Manager, set[Path]]) -> ApplyConflict:
    """Kubernetes' conflict error: grouped by manager (sorted), paths sorted."""
    ordered = sorted(conflicts.items(), key=lambda item: item[0].identity())
    pairs: list[tuple[str, str]] = []
    causes: list[dict[str, str]] = []
    lines: list[str] = []
    for other, paths in ordered:
        lines.append(f"conflicts with {other.describe()}:")
        for path in sorted(paths, key=_path_sort_key):
            text = path_string(path)
            pairs.append((other.manager, text))
            causes.append(
                {
                    "reason": "FieldManagerConflict",
                    "message": f"conflict with {other.describe()}",
                    "field": text,
                }
            )
            lines.append(f"- {text}")
    if len(pairs) == 1:
        other = ordered[0][0]
        message = f"Apply failed with 1 conflict: conflict with {other.describe()}: {pairs[0][1]}"
    else:
        message = f"Apply failed with {len(pairs)} conflicts: " + "\n".join(lines)
    return ApplyConflict(pairs, message, causes)
