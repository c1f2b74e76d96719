"""Name, label-key, label-value and annotation validation with Kubernetes' exact wording.

Role
----
Every object admission sees has a ``metadata.name`` whose format depends on its kind, and
labels and annotations whose keys and values follow the apimachinery rules. kubectl and
client libraries show the API server's error text verbatim (and some tests compare it), so
each validator here returns upstream's messages word for word, as a list of strings that is
empty when the value is valid -- the same contract as ``k8s.io/apimachinery``'s
``pkg/util/validation`` and ``pkg/api/validate/content`` helpers.

Flow
----
``validate_object_name(name, rule)`` picks the validator named by the kind's *name rule*
(``NAME_RULES`` / ``name_rule_for`` map kinds to rules, following each kind's
``Validate<Kind>`` function in kubernetes 1.37) and returns the details for
``metadata.name``. ``validate_generate_name`` applies the same rule leniently to a
``generateName`` prefix (a trailing dash is allowed, as upstream's ``maskTrailingDash``).
``validate_labels`` / ``validate_annotations`` return ``FieldError`` triples
``(field path, bad value, detail)`` like ``ValidateLabels`` / ``ValidateAnnotations``.

Two generations of wording
--------------------------
Upstream currently carries two copies of the DNS helpers: ``pkg/util/validation`` (used for
object names, ConfigMap keys) says "must be no more than N characters", while
``pkg/api/validate/content`` (used for label keys and values, and for the DNS prefix of a
label key) says "must be no more than N bytes". kubectl 1.37.1 prints both, so both are kept.
Lengths are always counted in UTF-8 bytes, as Go's ``len`` on a string does.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final, NamedTuple

__all__ = [
    "ANNOTATIONS_TOO_LONG_DETAIL",
    "CRONJOB_NAME_MAX_LENGTH",
    "DNS1035_LABEL_MAX_LENGTH",
    "DNS1123_LABEL_MAX_LENGTH",
    "DNS1123_SUBDOMAIN_MAX_LENGTH",
    "GROUP_NAME_RULES",
    "LABEL_KEY_NAME_MAX_LENGTH",
    "LABEL_VALUE_MAX_LENGTH",
    "NAME_RULES",
    "RULES",
    "TOTAL_ANNOTATION_SIZE_LIMIT",
    "FieldError",
    "go_quote",
    "is_config_map_key",
    "is_dns1035_label",
    "is_dns1123_label",
    "is_dns1123_subdomain",
    "is_qualified_name",
    "is_valid_label_value",
    "is_valid_path_segment_name",
    "is_valid_path_segment_prefix",
    "name_rule_for",
    "validate_annotations",
    "validate_generate_name",
    "validate_labels",
    "validate_object_name",
]

DNS1123_LABEL_MAX_LENGTH: Final = 63
DNS1123_SUBDOMAIN_MAX_LENGTH: Final = 253
DNS1035_LABEL_MAX_LENGTH: Final = 63
LABEL_KEY_NAME_MAX_LENGTH: Final = 63
LABEL_VALUE_MAX_LENGTH: Final = 63
# ValidateCronJobCreate: the controller appends "-<11 chars>" to make Job names, which must
# still fit a 63-character label.
CRONJOB_NAME_MAX_LENGTH: Final = DNS1035_LABEL_MAX_LENGTH - 11
# objectmeta.go TotalAnnotationSizeLimitB: the sum of key and value bytes of all annotations.
TOTAL_ANNOTATION_SIZE_LIMIT: Final = 256 * (1 << 10)
# field.TooLong's detail for that limit; the error type is FieldValueTooLong ("Too long").
ANNOTATIONS_TOO_LONG_DETAIL: Final = f"may not be more than {TOTAL_ANNOTATION_SIZE_LIMIT} bytes"

# The regular expressions, spelled exactly as upstream prints them in error messages.
_DNS1123_LABEL_FMT: Final = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN_FMT: Final = _DNS1123_LABEL_FMT + "(\\." + _DNS1123_LABEL_FMT + ")*"
_DNS1035_LABEL_FMT: Final = "[a-z]([-a-z0-9]*[a-z0-9])?"
_LABEL_KEY_FMT: Final = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_LABEL_VALUE_FMT: Final = "(" + _LABEL_KEY_FMT + ")?"
_CONFIG_MAP_KEY_FMT: Final = "[-._a-zA-Z0-9]+"

# Go's regexp anchors with ^...$ and its "$" never matches before a trailing newline, so
# fullmatch (not match + "$") is the faithful translation.
_DNS1123_LABEL_RE: Final = re.compile(_DNS1123_LABEL_FMT)
_DNS1123_SUBDOMAIN_RE: Final = re.compile(_DNS1123_SUBDOMAIN_FMT)
_DNS1035_LABEL_RE: Final = re.compile(_DNS1035_LABEL_FMT)
_LABEL_KEY_RE: Final = re.compile(_LABEL_KEY_FMT)
_LABEL_VALUE_RE: Final = re.compile(_LABEL_VALUE_FMT)
_CONFIG_MAP_KEY_RE: Final = re.compile(_CONFIG_MAP_KEY_FMT)

_DNS1123_LABEL_ERR: Final = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
    "and must start and end with an alphanumeric character"
)
_DNS1123_SUBDOMAIN_ERR: Final = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' "
    "or '.', and must start and end with an alphanumeric character"
)
_DNS1035_LABEL_ERR: Final = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with "
    "an alphabetic character, and end with an alphanumeric character"
)
_LABEL_KEY_ERR: Final = (
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with "
    "an alphanumeric character"
)
_LABEL_VALUE_ERR: Final = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' "
    "or '.', and must start and end with an alphanumeric character"
)
_CONFIG_MAP_KEY_ERR: Final = (
    "a valid config key must consist of alphanumeric characters, '-', '_' or '.'"
)


def _blen(value: str) -> int:
    """Go's ``len(string)``: the UTF-8 byte count, which every upstream limit is in."""
    return len(value.encode("utf-8", "surrogatepass"))


def _max_len_error(length: int, unit: str = "characters") -> str:
    return f"must be no more than {length} {unit}"


def _regex_error(msg: str, fmt: str, *examples: str) -> str:
    """Upstream's RegexError, including its quirk of a double space before each "or"."""
    if not examples:
        return f"{msg} (regex used for validation is '{fmt}')"
    shown = " or ".join(f"'{example}', " for example in examples)
    return f"{msg} (e.g. {shown}regex used for validation is '{fmt}')"


def _empty_error() -> str:
    return "must be non-empty"


# Go's strconv.Quote spells these control characters with a single-letter escape.
_GO_ESCAPES: Final = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
}


def go_quote(value: str) -> str:
    """Render ``value`` like Go's ``%q`` / ``strconv.Quote`` (used in field error strings)."""
    out = ['"']
    for ch in value:
        code = ord(ch)
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch in _GO_ESCAPES:
            out.append(_GO_ESCAPES[ch])
        elif ch == " " or (ch.isprintable() and not 0xD800 <= code <= 0xDFFF):
            out.append(ch)
        elif code < 0x80:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


# --------------------------------------------------------------------------------------------
# pkg/util/validation ("characters" wording): object names and ConfigMap keys.


def is_dns1123_label(value: str) -> list[str]:
    """RFC 1123 label (namespaces, StatefulSets, Services in 1.37): ≤63, [a-z0-9-]."""
    errs: list[str] = []
    if _blen(value) > DNS1123_LABEL_MAX_LENGTH:
        errs.append(_max_len_error(DNS1123_LABEL_MAX_LENGTH))
    if not _DNS1123_LABEL_RE.fullmatch(value):
        if _DNS1123_SUBDOMAIN_RE.fullmatch(value):
            # A valid subdomain that is not a valid label can only have failed on its dots
            # (the length was reported above), so upstream says exactly that.
            errs.append("must not contain dots")
        else:
            errs.append(_regex_error(_DNS1123_LABEL_ERR, _DNS1123_LABEL_FMT, "my-name", "123-abc"))
    return errs


def _subdomain_errors(value: str, unit: str) -> list[str]:
    errs: list[str] = []
    if _blen(value) > DNS1123_SUBDOMAIN_MAX_LENGTH:
        errs.append(_max_len_error(DNS1123_SUBDOMAIN_MAX_LENGTH, unit))
    if not _DNS1123_SUBDOMAIN_RE.fullmatch(value):
        errs.append(_regex_error(_DNS1123_SUBDOMAIN_ERR, _DNS1123_SUBDOMAIN_FMT, "example.com"))
    return errs


def is_dns1123_subdomain(value: str) -> list[str]:
    """RFC 1123 subdomain (most object names): ≤253, dot-separated RFC 1123 labels."""
    return _subdomain_errors(value, "characters")


def is_dns1035_label(value: str) -> list[str]:
    """RFC 1035 label: like an RFC 1123 label but must start with a letter."""
    errs: list[str] = []
    if _blen(value) > DNS1035_LABEL_MAX_LENGTH:
        errs.append(_max_len_error(DNS1035_LABEL_MAX_LENGTH))
    if not _DNS1035_LABEL_RE.fullmatch(value):
        errs.append(_regex_error(_DNS1035_LABEL_ERR, _DNS1035_LABEL_FMT, "my-name", "abc-123"))
    return errs


def _chdir_prefix_errors(value: str) -> list[str]:
    # Keys become file names in projected volumes, so "." and ".." tricks are refused.
    if value == ".":
        return ["must not be '.'"]
    if value == "..":
        return ["must not be '..'"]
    if value.startswith(".."):
        return ["must not start with '..'"]
    return []


def is_config_map_key(value: str) -> list[str]:
    """A key of a ConfigMap's or Secret's data: ≤253 of [-._a-zA-Z0-9], no ``..`` prefix."""
    errs: list[str] = []
    if _blen(value) > DNS1123_SUBDOMAIN_MAX_LENGTH:
        errs.append(_max_len_error(DNS1123_SUBDOMAIN_MAX_LENGTH))
    if not _CONFIG_MAP_KEY_RE.fullmatch(value):
        errs.append(
            _regex_error(
                _CONFIG_MAP_KEY_ERR, _CONFIG_MAP_KEY_FMT, "key.name", "KEY_NAME", "key-name"
            )
        )
    errs.extend(_chdir_prefix_errors(value))
    return errs


# --------------------------------------------------------------------------------------------
# pkg/api/validate/content ("bytes" wording): label keys (qualified names) and values.


def is_qualified_name(value: str) -> list[str]:
    """A label key / qualified name: ``[prefix/]name``, prefix a DNS subdomain, name ≤63."""
    errs: list[str] = []
    parts = value.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            errs.append("prefix part " + _empty_error())
        else:
            errs.extend("prefix part " + msg for msg in _subdomain_errors(prefix, "bytes"))
    else:
        # More than one slash: upstream reports the whole format in one message and stops.
        return [
            "a valid label key "
            + _regex_error(_LABEL_KEY_ERR, _LABEL_KEY_FMT, "MyName", "my.name", "123-abc")
            + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        ]
    if not name:
        errs.append("name part " + _empty_error())
    elif _blen(name) > LABEL_KEY_NAME_MAX_LENGTH:
        errs.append("name part " + _max_len_error(LABEL_KEY_NAME_MAX_LENGTH, "bytes"))
    if not _LABEL_KEY_RE.fullmatch(name):
        errs.append(
            "name part "
            + _regex_error(_LABEL_KEY_ERR, _LABEL_KEY_FMT, "MyName", "my.name", "123-abc")
        )
    return errs


def is_valid_label_value(value: str) -> list[str]:
    """A label value: empty, or ≤63 of [-A-Za-z0-9_.] starting and ending alphanumeric."""
    errs: list[str] = []
    if _blen(value) > LABEL_VALUE_MAX_LENGTH:
        errs.append(_max_len_error(LABEL_VALUE_MAX_LENGTH, "bytes"))
    if not _LABEL_VALUE_RE.fullmatch(value):
        errs.append(
            _regex_error(_LABEL_VALUE_ERR, _LABEL_VALUE_FMT, "MyValue", "my_value", "12345")
        )
    return errs


# --------------------------------------------------------------------------------------------
# pkg/api/validation/path: names that only have to be safe as one URL path segment.

_PATH_SEGMENT_MAY_NOT_BE: Final = (".", "..")
_PATH_SEGMENT_MAY_NOT_CONTAIN: Final = ("/", "%")


def is_valid_path_segment_name(name: str) -> list[str]:
    """RBAC objects (and the generic create check): not ``.``/``..``, no ``/`` or ``%``."""
    if name in _PATH_SEGMENT_MAY_NOT_BE:
        return [f"may not be '{name}'"]
    return is_valid_path_segment_prefix(name)


def is_valid_path_segment_prefix(name: str) -> list[str]:
    """As ``is_valid_path_segment_name`` minus the exact-name checks a suffix could cure."""
    return [f"may not contain '{bad}'" for bad in _PATH_SEGMENT_MAY_NOT_CONTAIN if bad in name]


# --------------------------------------------------------------------------------------------
# Object names by kind.

#: The rules ``validate_object_name`` understands. "cronjob" is the subdomain rule capped at
#: 52 characters (ValidateCronJobCreate).
RULES: Final = frozenset({"subdomain", "label", "dns1035", "path-segment", "cronjob"})

#: Kind -> name rule, from each kind's Validate<Kind> in kubernetes 1.37 (pkg/apis/*/validation).
#: Kinds whose validation passes no name function get "path-segment": the only check left is
#: the generic one rest.BeforeCreate runs on every create. Unlisted kinds (custom resources
#: included) use "subdomain"; see ``name_rule_for``.
NAME_RULES: Final[dict[str, str]] = {
    # core/v1
    "Namespace": "label",  # ValidateNamespaceName = NameIsDNSLabel
    "Node": "subdomain",
    "Pod": "subdomain",
    "ReplicationController": "subdomain",
    # RelaxedServiceNameValidation (KEP-5311) is on by default in 1.37: Service names are
    # RFC 1123 labels, so they may start with a digit ("1-web"). Use "dns1035" to emulate the
    # pre-1.36 behaviour.
    "Service": "label",
    "Endpoints": "subdomain",
    "ConfigMap": "subdomain",
    "Secret": "subdomain",
    "ServiceAccount": "subdomain",
    # core/v1 Events only get legacy validation (namespace/involvedObject checks); their names
    # are only held to the path-segment rule. events.k8s.io/v1 creates use "subdomain" (see
    # GROUP_NAME_RULES).
    "Event": "path-segment",
    "PersistentVolume": "subdomain",
    "PersistentVolumeClaim": "subdomain",  # uses ValidatePersistentVolumeName
    "ResourceQuota": "subdomain",
    "LimitRange": "subdomain",
    # apps/v1
    "Deployment": "subdomain",
    "ReplicaSet": "subdomain",
    "StatefulSet": "label",  # pod hostnames are "<name>-<ordinal>", so a label is required
    "DaemonSet": "subdomain",
    "ControllerRevision": "subdomain",
    # batch/v1
    "Job": "subdomain",
    "CronJob": "cronjob",
    # networking.k8s.io/v1
    "Ingress": "subdomain",
    "IngressClass": "subdomain",
    # storage.k8s.io/v1
    "StorageClass": "subdomain",
    # coordination.k8s.io/v1
    "Lease": "subdomain",
    # discovery.k8s.io/v1
    "EndpointSlice": "subdomain",
    # scheduling.k8s.io/v1 (the reserved "system-" prefix is a separate, kind-specific check)
    "PriorityClass": "subdomain",
    # policy/v1: ValidatePodDisruptionBudget validates only the spec.
    "PodDisruptionBudget": "path-segment",
    # rbac.authorization.k8s.io/v1: ValidateRBACName = path.IsValidPathSegmentName
    "Role": "path-segment",
    "ClusterRole": "path-segment",
    "RoleBinding": "path-segment",
    "ClusterRoleBinding": "path-segment",
}

#: (group, kind) overrides for kinds whose rule depends on the API group.
GROUP_NAME_RULES: Final[dict[tuple[str, str], str]] = {
    ("events.k8s.io", "Event"): "subdomain",
}


def name_rule_for(kind: str, group: str = "") -> str:
    """The name rule of ``kind`` in ``group``; "subdomain" for unlisted kinds (and CRs)."""
    return GROUP_NAME_RULES.get((group, kind)) or NAME_RULES.get(kind, "subdomain")


def _mask_trailing_dash(name: str) -> str:
    # Upstream's maskTrailingDash replaces the last *two* characters with "a" when the prefix
    # ends in "-" (name[:len-2] + "a"); the quirk is kept so the same prefixes pass. Go would
    # panic on a lone "-"; treat it as "a" instead.
    if name.endswith("-"):
        return name[:-2] + "a" if len(name) >= 2 else "a"
    return name


def validate_object_name(name: str, kind_rule: str, prefix: bool = False) -> list[str]:
    """Details for an invalid ``metadata.name`` under ``kind_rule`` (empty when valid).

    With ``prefix`` the value is a ``generateName`` prefix: a trailing dash is allowed and the
    exact-name checks that a generated suffix could cure are skipped, as upstream's
    ``ValidateNameFunc(name, prefix=true)``. An empty name is the caller's business (upstream
    reports "name or generateName is required" before any rule runs).
    """
    if kind_rule == "path-segment":
        return is_valid_path_segment_prefix(name) if prefix else is_valid_path_segment_name(name)
    candidate = _mask_trailing_dash(name) if prefix else name
    if kind_rule == "subdomain":
        return is_dns1123_subdomain(candidate)
    if kind_rule == "label":
        return is_dns1123_label(candidate)
    if kind_rule == "dns1035":
        return is_dns1035_label(candidate)
    if kind_rule == "cronjob":
        errs = is_dns1123_subdomain(candidate)
        # Only the final name is capped; the prefix check is the plain subdomain rule.
        if not prefix and _blen(name) > CRONJOB_NAME_MAX_LENGTH:
            errs.append(_max_len_error(CRONJOB_NAME_MAX_LENGTH))
        return errs
    raise ValueError(f"unknown name rule {kind_rule!r}; expected one of {sorted(RULES)}")


def validate_generate_name(generate_name: str, kind_rule: str) -> list[str]:
    """Details for an invalid ``metadata.generateName`` (validated leniently, as a prefix)."""
    return validate_object_name(generate_name, kind_rule, prefix=True)


# --------------------------------------------------------------------------------------------
# Labels and annotations.


class FieldError(NamedTuple):
    """One field error: ``(field path, offending value, detail)``, unpackable as a triple.

    ``type`` is the upstream cause type: ``FieldValueTooLong`` for the annotation size limit
    (whose value upstream omits), ``FieldValueInvalid`` for everything else.
    """

    field: str
    value: str
    detail: str

    @property
    def type(self) -> str:
        if self.detail == ANNOTATIONS_TOO_LONG_DETAIL and self.value == "":
            return "FieldValueTooLong"
        return "FieldValueInvalid"

    @property
    def message(self) -> str:
        """The cause message without the field, e.g. ``Invalid value: "x": ...``."""
        if self.type == "FieldValueTooLong":
            return f"Too long: {self.detail}"
        return f"Invalid value: {go_quote(self.value)}: {self.detail}"

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


def validate_labels(
    labels: Mapping[str, str] | None, field: str = "metadata.labels"
) -> list[FieldError]:
    """ValidateLabels: one error per failed check of each key and each value, in map order."""
    errs: list[FieldError] = []
    for key, value in (labels or {}).items():
        errs.extend(FieldError(field, key, msg) for msg in is_qualified_name(key))
        errs.extend(FieldError(field, value, msg) for msg in is_valid_label_value(str(value)))
    return errs


def validate_annotations(
    annotations: Mapping[str, str] | None, field: str = "metadata.annotations"
) -> list[FieldError]:
    """ValidateAnnotations: keys are qualified names in any case; total size ≤ 256 KiB."""
    errs: list[FieldError] = []
    total = 0
    for key, value in (annotations or {}).items():
        # Annotation keys follow the label-key rule except that case does not matter, so
        # upstream lowercases before checking (but reports the key as written).
        errs.extend(FieldError(field, key, msg) for msg in is_qualified_name(key.lower()))
        total += _blen(key) + _blen(str(value))
    if total > TOTAL_ANNOTATION_SIZE_LIMIT:
        errs.append(FieldError(field, "", ANNOTATIONS_TOO_LONG_DETAIL))
    return errs
