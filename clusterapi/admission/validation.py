"""Schema, name and metadata validation of objects (see the package docstring)."""

from __future__ import annotations

import functools
import re
from decimal import Decimal, InvalidOperation
from typing import Any

import fastjsonschema
import jsonschema
import referencing
import referencing.jsonschema

from clusterapi.admission import codecache, names
from clusterapi.core.errors import Cause, bad_request, invalid
from clusterapi.resources import schemas
from clusterapi.resources.registry import Kind

Obj = dict[str, Any]
_DEFINITIONS_ID = "https://kubernetes.io/api/_definitions.json"
_QUANTITY_REF = schemas.REF_PREFIX + "io.k8s.apimachinery.pkg.api.resource.Quantity"


@functools.cache
def _validator(definition: str) -> jsonschema.protocols.Validator:
    """A compiled validator for one definition, against the strict (closed) schemas."""
    root = {"$defs": schemas.definitions(strict=True)}
    resource = referencing.Resource.from_contents(
        {"$schema": "https://json-schema.org/draft/2020-12/schema", **root},
        default_specification=referencing.jsonschema.DRAFT202012,
    )
    registry: referencing.Registry[Any] = referencing.Registry().with_resource(
        _DEFINITIONS_ID, resource
    )
    schema = {"$ref": f"{_DEFINITIONS_ID}#/$defs/{definition}"}
    return jsonschema.Draft202012Validator(schema, registry=registry)


def _any_value(_value: Any) -> bool:
    return True


@functools.cache
def _formats() -> frozenset[str]:
    """Every ``format`` the schemas name (int32, date-time, ...)."""
    found: set[str] = set()
    pending: list[Any] = [schemas.definitions(strict=True)]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            if isinstance(node.get("format"), str):
                found.add(node["format"])
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)
    return frozenset(found)


@functools.cache
def _fast_validator(definition: str) -> Any:
    """A generated-code validator (fastjsonschema) for the same strict schema.

    It answers only "valid or not", about fifteen times faster than ``_validator``; invalid
    objects are then run through ``_validator`` for the complete, well-worded error list. The
    schemas use no keyword on which draft-07 (fastjsonschema) and 2020-12 (jsonschema) differ
    (``$ref`` has no constraining siblings), and a differential test keeps the two agreeing.
    """
    definitions = schemas.definitions(strict=True)
    schema = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "$defs": definitions,
        "$ref": f"{schemas.REF_PREFIX}{definition}",
    }
    # Formats are annotations for jsonschema (no format checker is configured), so the fast
    # validator must not check them either.
    formats = dict.fromkeys(_formats(), _any_value)
    # The generated code is kept on disk: generating it is most of a second for a Pod.
    code = codecache.code(
        codecache.entry_name(definition, _definitions_digest()),
        lambda: fastjsonschema.compile_to_code(schema, formats=formats),
    )
    namespace: dict[str, Any] = {}
    exec(code, namespace)  # noqa: S102 - code generated from our own bundled schemas
    return functools.partial(namespace["validate"], custom_formats=formats)


@functools.cache
def _definitions_digest() -> str:
    return codecache.digest(schemas.definitions(strict=True))


def _schema_valid(definition: str, obj: Obj) -> bool:
    try:
        _fast_validator(definition)(obj)
    except fastjsonschema.JsonSchemaValueException:
        return False
    return True


def _path(parts: Any) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


def _error_causes(error: jsonschema.ValidationError) -> list[Cause]:
    """Turn one schema error into Invalid causes in the style of Kubernetes' messages."""
    field = _path(error.absolute_path)
    value = error.instance
    if error.validator == "type":
        wanted = error.validator_value
        wanted = [w for w in wanted if w != "null"] if isinstance(wanted, list) else [wanted]
        detail = (
            f'Invalid value: "{_type_name(value)}": {field or "body"} in body must be of type '
            f'{" or ".join(wanted)}: "{_short(value)}"'
        )
        return [Cause("FieldValueTypeInvalid", detail, field)]
    if error.validator == "required":
        missing = re.findall(r"'([^']+)' is a required property", error.message)
        name = missing[0] if missing else "?"
        full = f"{field}.{name}" if field else name
        return [Cause("FieldValueRequired", "Required value", full)]
    if error.validator == "enum":
        allowed = ", ".join(f'"{v}"' for v in error.validator_value if v is not None)
        return [
            Cause(
                "FieldValueNotSupported",
                f'Unsupported value: "{_short(value)}": supported values: {allowed}',
                field,
            )
        ]
    if error.validator == "oneOf":
        return [
            Cause(
                "FieldValueTypeInvalid",
                f'Invalid value: "{_short(value)}": {field} in body must be a string or a number',
                field,
            )
        ]
    return [Cause("FieldValueInvalid", f"Invalid value: {error.message}", field)]


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 64 else text[:61] + "..."


def _unknown_fields(error: jsonschema.ValidationError) -> list[str]:
    known = set(error.schema.get("properties", {}))
    base = list(error.absolute_path)
    extras = sorted(k for k in error.instance if k not in known)
    return [_path([*base, k]) for k in extras]


def _drop(obj: Obj, dotted: str) -> None:
    """Remove an unknown field (given as a path like ``spec.template.spec.foo``)."""
    parts = re.findall(r"[^.\[\]]+|\[\d+\]", dotted)
    node: Any = obj
    for part in parts[:-1]:
        node = node[int(part[1:-1])] if part.startswith("[") else node.get(part)
        if node is None:
            return
    last = parts[-1]
    if isinstance(node, dict):
        node.pop(last, None)


def _canonical_quantity(value: int | float) -> str:
    """A number given for a quantity, as the string upstream would store (``0.5`` -> ``500m``)."""
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return str(value)
    if number == number.to_integral_value():
        return str(int(number))
    milli = number * 1000
    if milli == milli.to_integral_value():
        return f"{int(milli)}m"
    return format(number.normalize(), "f")


def _refs_in(schema: Any) -> set[str]:
    """The definitions a schema names anywhere inside it (``$ref`` values, without prefix)."""
    found: set[str] = set()
    pending = [schema]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith(schemas.REF_PREFIX):
                found.add(ref[len(schemas.REF_PREFIX) :])
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)
    return found


@functools.cache
def _holding_quantities() -> frozenset[str]:
    """The definitions under which a Quantity can occur (a fixpoint over their references)."""
    quantity = _QUANTITY_REF[len(schemas.REF_PREFIX) :]
    refs = {name: _refs_in(schema) for name, schema in schemas.definitions().items()}
    holding = {quantity}
    grew = True
    while grew:
        grew = False
        for name, named in refs.items():
            if name not in holding and named & holding:
                holding.add(name)
                grew = True
    return frozenset(holding)


_inline_holds: dict[int, bool] = {}


def _may_hold_quantity(schema: schemas.Schema) -> bool:
    """Whether a Quantity can occur under this schema; most subtrees of an object hold none,
    and skipping them keeps ``_quantities`` from walking every write's whole object."""
    key = id(schema)
    found = _inline_holds.get(key)
    if found is None:
        found = _inline_holds[key] = bool(_refs_in(schema) & _holding_quantities())
    return found


def _quantities(node: Any, schema: schemas.Schema | None) -> None:
    """Turn numeric quantities into strings (clients' models require strings)."""
    if schema is None or not _may_hold_quantity(schema):
        return
    if isinstance(node, dict):
        props = schemas.resolve(schema).get("properties")
        extra = schemas.resolve(schema).get("additionalProperties")
        for key, value in node.items():
            sub = props.get(key) if props and key in props else extra
            if not isinstance(sub, dict):
                continue
            if (
                sub.get("$ref") == _QUANTITY_REF
                and isinstance(value, int | float)
                and not isinstance(value, bool)
            ):
                node[key] = _canonical_quantity(value)
            else:
                _quantities(value, sub)
    elif isinstance(node, list):
        item = schemas.resolve(schema).get("items")
        if isinstance(item, dict):
            for i, value in enumerate(node):
                if item.get("$ref") == _QUANTITY_REF and isinstance(value, int | float):
                    node[i] = _canonical_quantity(value)
                else:
                    _quantities(value, item)


def validate_object(
    kind: Kind,
    obj: Obj,
    old: Obj | None,
    *,
    field_validation: str = "Strict",
    status_only: bool = False,
) -> list[str]:
    """Validate ``obj`` (already defaulted) for a create (``old`` None) or an update.

    ``status_only``: a write through the status subresource, which carries everything but
    ``status`` over from the stored object (``store.objects._prepare_update``); the schema is
    checked on ``status`` alone, as upstream's status strategies validate the status and the
    metadata change, not the spec again. An invalid status is still reported against the
    whole object, so the causes carry full field paths.

    Returns warnings for the response's ``Warning`` headers; raises ``ApiError`` (400 for
    unknown fields under Strict, 422 Invalid otherwise) and mutates ``obj`` only to drop
    unknown fields (Warn, Ignore) and canonicalise quantities.
    """
    definition = kind.definition
    status_definition = _status_definition(definition) if status_only and old else None
    if status_definition is not None:
        status = obj.get("status")
        _quantities(status, schemas.definitions()[status_definition])
        valid = status is None or _schema_valid(status_definition, status)
    else:
        _quantities(obj, schemas.definitions()[definition])
        valid = _schema_valid(definition, obj)
    warnings: list[str] = []
    causes: list[Cause] = []
    unknown: list[str] = []
    errors = () if valid else _validator(definition).iter_errors(obj)
    for error in errors:
        if error.validator in ("additionalProperties", "unevaluatedProperties"):
            unknown.extend(_unknown_fields(error))
        else:
            causes.extend(_error_causes(error))
    if unknown:
        if field_validation == "Strict":
            raise bad_request(
                "strict decoding error: " + ", ".join(f'unknown field "{f}"' for f in unknown)
            )
        for f in unknown:
            if field_validation == "Warn":
                warnings.append(f'unknown field "{f}"')
            _drop(obj, f)
    metadata = obj.get("metadata") or {}
    name = str(metadata.get("name", ""))
    causes.extend(_metadata_causes(kind, metadata))
    if old is not None:
        causes.extend(_metadata_update_causes(metadata, old.get("metadata") or {}))
    causes.extend(
        Cause("FieldValueInvalid", f"Invalid value: {_q(v)}: {d}", f)
        for f, v, d in kind.validate(obj, old)
    )
    if causes:
        raise invalid(kind, name, causes)
    return warnings


@functools.cache
def _status_definition(definition: str) -> str | None:
    """The definition of a kind's ``status`` (``io.k8s.api.core.v1.PodStatus``), if any."""
    status = (schemas.definitions()[definition].get("properties") or {}).get("status") or {}
    ref = status.get("$ref")
    return ref.removeprefix(schemas.REF_PREFIX) if isinstance(ref, str) else None


def _q(value: str) -> str:
    return f'"{value}"'


def _metadata_update_causes(metadata: Obj, old_metadata: Obj) -> list[Cause]:
    """Rules on how metadata may change (upstream ``ValidateObjectMetaUpdate``)."""
    causes: list[Cause] = []
    if old_metadata.get("deletionTimestamp"):
        # Once deletion has started, finalizers may only go: a new one could hold the
        # object forever after its owner already decided it should be gone.
        added = sorted(
            set(metadata.get("finalizers") or ()) - set(old_metadata.get("finalizers") or ())
        )
        if added:
            listed = ", ".join(f'"{f}"' for f in added)
            causes.append(
                Cause(
                    "FieldValueForbidden",
                    "Forbidden: no new finalizers can be added if the object is being deleted, "
                    f"found new finalizers []string{{{listed}}}",
                    "metadata.finalizers",
                )
            )
    return causes


def _metadata_causes(kind: Kind, metadata: Obj) -> list[Cause]:
    causes: list[Cause] = []
    name = metadata.get("name")
    if not name:
        causes.append(
            Cause(
                "FieldValueRequired",
                "Required value: name or generateName is required",
                "metadata.name",
            )
        )
    else:
        for detail in names.validate_object_name(str(name), kind.naming):
            causes.append(
                Cause("FieldValueInvalid", f'Invalid value: "{name}": {detail}', "metadata.name")
            )
    labels = metadata.get("labels")
    if isinstance(labels, dict):
        for error in names.validate_labels(labels):
            causes.append(Cause(error.type, error.message, error.field))
    annotations = metadata.get("annotations")
    if isinstance(annotations, dict):
        for error in names.validate_annotations(annotations):
            causes.append(Cause(error.type, error.message, error.field))
    return causes
