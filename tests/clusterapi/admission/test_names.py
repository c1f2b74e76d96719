"""Name, label and annotation validators return upstream's messages word for word.

Messages are apimachinery's (``pkg/util/validation``, ``pkg/api/validate/content``,
``pkg/api/validation``); the ConfigMap-key and label ones were checked against kubectl 1.37.1.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clusterapi.admission.names import (
    ANNOTATIONS_TOO_LONG_DETAIL,
    NAME_RULES,
    RULES,
    TOTAL_ANNOTATION_SIZE_LIMIT,
    FieldError,
    go_quote,
    is_config_map_key,
    is_dns1035_label,
    is_dns1123_label,
    is_dns1123_subdomain,
    is_qualified_name,
    is_valid_label_value,
    is_valid_path_segment_name,
    is_valid_path_segment_prefix,
    name_rule_for,
    validate_annotations,
    validate_generate_name,
    validate_labels,
    validate_object_name,
)

SUBDOMAIN_ERROR = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used "
    "for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
LABEL_ERROR = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and "
    "must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex "
    "used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
DNS1035_ERROR = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
    "alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or "
    "'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
)
KEY_NAME_ERROR = (
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
    "validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)
LABEL_VALUE_ERROR = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or "
    "'my_value',  or '12345', regex used for validation is "
    "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)
CONFIG_KEY_ERROR = (
    "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. "
    "'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"
)


# --------------------------------------------------------------------------------------------
# DNS names


@pytest.mark.parametrize("value", ["a", "0", "example.com", "a-b.c-d", "1.2.3", "a" * 253])
def test_valid_subdomains_have_no_errors(value: str) -> None:
    assert is_dns1123_subdomain(value) == []


@pytest.mark.parametrize(
    ("value", "errors"),
    [
        ("", [SUBDOMAIN_ERROR]),
        ("Example.com", [SUBDOMAIN_ERROR]),
        ("a_b", [SUBDOMAIN_ERROR]),
        ("-a", [SUBDOMAIN_ERROR]),
        ("a.", [SUBDOMAIN_ERROR]),
        ("a..b", [SUBDOMAIN_ERROR]),
        ("a" * 254, ["must be no more than 253 characters"]),
        ("A" * 254, ["must be no more than 253 characters", SUBDOMAIN_ERROR]),
    ],
)
def test_invalid_subdomains_report_upstream_messages(value: str, errors: list[str]) -> None:
    assert is_dns1123_subdomain(value) == errors


@pytest.mark.parametrize(
    ("value", "errors"),
    [
        ("my-name", []),
        ("123-abc", []),
        ("a" * 63, []),
        ("a.b", ["must not contain dots"]),
        ("My-Name", [LABEL_ERROR]),
        ("-a", [LABEL_ERROR]),
        ("", [LABEL_ERROR]),
        ("a" * 64, ["must be no more than 63 characters"]),
        (
            "a" * 30 + "." + "a" * 33,
            ["must be no more than 63 characters", "must not contain dots"],
        ),
    ],
)
def test_dns1123_label(value: str, errors: list[str]) -> None:
    assert is_dns1123_label(value) == errors


@pytest.mark.parametrize(
    ("value", "errors"),
    [
        ("my-name", []),
        ("abc-123", []),
        ("1-web", [DNS1035_ERROR]),
        ("a.b", [DNS1035_ERROR]),
        ("a" * 64, ["must be no more than 63 characters"]),
    ],
)
def test_dns1035_label(value: str, errors: list[str]) -> None:
    assert is_dns1035_label(value) == errors


def test_lengths_are_counted_in_utf8_bytes() -> None:
    # 32 two-byte characters are 64 bytes: too long, like Go's len().
    assert is_valid_label_value("é" * 32)[0] == "must be no more than 63 bytes"


# --------------------------------------------------------------------------------------------
# Label keys and values, ConfigMap keys, path segments


@pytest.mark.parametrize(
    "value",
    ["a", "MyName", "my.name", "123-abc", "example.com/MyName", "k8s.io/a_b", "a" * 63],
)
def test_valid_qualified_names(value: str) -> None:
    assert is_qualified_name(value) == []


@pytest.mark.parametrize(
    ("value", "errors"),
    [
        ("", ["name part must be non-empty", "name part " + KEY_NAME_ERROR]),
        ("-a", ["name part " + KEY_NAME_ERROR]),
        ("a" * 64, ["name part must be no more than 63 bytes"]),
        ("/a", ["prefix part must be non-empty"]),
        ("a/", ["name part must be non-empty", "name part " + KEY_NAME_ERROR]),
        ("Example.com/a", ["prefix part " + SUBDOMAIN_ERROR]),
        ("a" * 254 + "/a", ["prefix part must be no more than 253 bytes"]),
        (
            "a/b/c",
            [
                "a valid label key "
                + KEY_NAME_ERROR
                + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
            ],
        ),
    ],
)
def test_invalid_qualified_names(value: str, errors: list[str]) -> None:
    assert is_qualified_name(value) == errors


@pytest.mark.parametrize(
    ("value", "errors"),
    [
        ("", []),
        ("MyValue", []),
        ("my_value", []),
        ("12345", []),
        ("a" * 63, []),
        ("-a", [LABEL_VALUE_ERROR]),
        ("a b", [LABEL_VALUE_ERROR]),
        ("a" * 64, ["must be no more than 63 bytes"]),
        ("-" * 64, ["must be no more than 63 bytes", LABEL_VALUE_ERROR]),
    ],
)
def test_label_values(value: str, errors: list[str]) -> None:
    assert is_valid_label_value(value) == errors


@pytest.mark.parametrize(
    ("value", "errors"),
    [
        ("key.name", []),
        ("KEY_NAME", []),
        (".dotfile", []),
        ("a b", [CONFIG_KEY_ERROR]),
        ("é", [CONFIG_KEY_ERROR]),
        (".", ["must not be '.'"]),
        ("..", ["must not be '..'"]),
        ("..a", ["must not start with '..'"]),
        ("a" * 254, ["must be no more than 253 characters"]),
    ],
)
def test_config_map_keys(value: str, errors: list[str]) -> None:
    assert is_config_map_key(value) == errors


@pytest.mark.parametrize(
    ("value", "errors"),
    [
        ("system:admin", []),
        ("Anything Goes", []),
        (".", ["may not be '.'"]),
        ("..", ["may not be '..'"]),
        ("a/b", ["may not contain '/'"]),
        ("a%b/c", ["may not contain '/'", "may not contain '%'"]),
    ],
)
def test_path_segment_names(value: str, errors: list[str]) -> None:
    assert is_valid_path_segment_name(value) == errors


def test_path_segment_prefix_skips_the_exact_name_checks() -> None:
    assert is_valid_path_segment_prefix("..") == []
    assert is_valid_path_segment_prefix("a/") == ["may not contain '/'"]


# --------------------------------------------------------------------------------------------
# Object names by kind


@pytest.mark.parametrize(
    ("name", "rule", "errors"),
    [
        ("web.example", "subdomain", []),
        ("Web", "subdomain", [SUBDOMAIN_ERROR]),
        ("web.example", "label", ["must not contain dots"]),
        ("1-web", "label", []),
        ("1-web", "dns1035", [DNS1035_ERROR]),
        ("system:viewer", "path-segment", []),
        ("a/b", "path-segment", ["may not contain '/'"]),
        ("a" * 52, "cronjob", []),
        ("a" * 53, "cronjob", ["must be no more than 52 characters"]),
        ("A" * 53, "cronjob", [SUBDOMAIN_ERROR, "must be no more than 52 characters"]),
    ],
)
def test_validate_object_name_applies_the_kind_rule(
    name: str, rule: str, errors: list[str]
) -> None:
    assert validate_object_name(name, rule) == errors


def test_validate_object_name_rejects_unknown_rules() -> None:
    with pytest.raises(ValueError, match="unknown name rule"):
        validate_object_name("x", "dns952")


@pytest.mark.parametrize(
    ("prefix", "rule", "errors"),
    [
        ("web-", "subdomain", []),
        ("web-", "label", []),
        ("web-", "dns1035", []),
        ("-", "subdomain", []),
        ("Web-", "subdomain", [SUBDOMAIN_ERROR]),
        ("web", "subdomain", []),
        # Upstream masks the last *two* characters of a dash-terminated prefix.
        ("a.-", "subdomain", []),
        ("..", "path-segment", []),
        ("a/", "path-segment", ["may not contain '/'"]),
        ("a" * 60 + "-", "cronjob", []),
    ],
)
def test_generate_name_prefixes_are_validated_leniently(
    prefix: str, rule: str, errors: list[str]
) -> None:
    assert validate_generate_name(prefix, rule) == errors


@pytest.mark.parametrize(
    ("kind", "rule"),
    [
        ("Namespace", "label"),
        ("Node", "subdomain"),
        ("Pod", "subdomain"),
        ("ReplicationController", "subdomain"),
        ("Service", "label"),  # RelaxedServiceNameValidation, on by default in 1.37
        ("Endpoints", "subdomain"),
        ("ConfigMap", "subdomain"),
        ("Secret", "subdomain"),
        ("ServiceAccount", "subdomain"),
        ("Event", "path-segment"),
        ("PersistentVolume", "subdomain"),
        ("PersistentVolumeClaim", "subdomain"),
        ("ResourceQuota", "subdomain"),
        ("LimitRange", "subdomain"),
        ("Deployment", "subdomain"),
        ("ReplicaSet", "subdomain"),
        ("StatefulSet", "label"),
        ("DaemonSet", "subdomain"),
        ("ControllerRevision", "subdomain"),
        ("Job", "subdomain"),
        ("CronJob", "cronjob"),
        ("Ingress", "subdomain"),
        ("IngressClass", "subdomain"),
        ("StorageClass", "subdomain"),
        ("Lease", "subdomain"),
        ("EndpointSlice", "subdomain"),
        ("PriorityClass", "subdomain"),
        ("PodDisruptionBudget", "path-segment"),
        ("Role", "path-segment"),
        ("ClusterRole", "path-segment"),
        ("RoleBinding", "path-segment"),
        ("ClusterRoleBinding", "path-segment"),
    ],
)
def test_name_rules_follow_upstream_kind_validation(kind: str, rule: str) -> None:
    assert NAME_RULES[kind] == rule
    assert name_rule_for(kind) == rule


def test_name_rule_for_handles_groups_and_unknown_kinds() -> None:
    assert name_rule_for("Event", "events.k8s.io") == "subdomain"
    assert name_rule_for("Event") == "path-segment"
    assert name_rule_for("Widget", "example.com") == "subdomain"
    assert set(NAME_RULES.values()) <= RULES


# --------------------------------------------------------------------------------------------
# Labels and annotations


def test_validate_labels_reports_each_failed_key_and_value() -> None:
    errors = validate_labels({"ok": "fine", "-bad": "-worse"})
    assert errors == [
        ("metadata.labels", "-bad", "name part " + KEY_NAME_ERROR),
        ("metadata.labels", "-worse", LABEL_VALUE_ERROR),
    ]
    field, value, detail = errors[1]
    assert (field, value, detail) == ("metadata.labels", "-worse", LABEL_VALUE_ERROR)
    assert errors[1].type == "FieldValueInvalid"
    assert str(errors[1]) == f'metadata.labels: Invalid value: "-worse": {LABEL_VALUE_ERROR}'
    assert validate_labels(None) == []
    assert validate_labels({"a": "b"}, "spec.template.metadata.labels") == []
    assert validate_labels({"a b": "c"}, "spec.selector.matchLabels")[0].field == (
        "spec.selector.matchLabels"
    )


def test_annotation_keys_are_checked_case_insensitively() -> None:
    assert validate_annotations({"Example.COM/Some-Key": "any value at all!"}) == []
    assert validate_annotations({"a b": "x"}) == [
        ("metadata.annotations", "a b", "name part " + KEY_NAME_ERROR)
    ]


def test_annotations_may_total_256_kib() -> None:
    at_limit = {"k": "v" * (TOTAL_ANNOTATION_SIZE_LIMIT - 1)}
    assert validate_annotations(at_limit) == []
    over = {"k": "v" * TOTAL_ANNOTATION_SIZE_LIMIT}
    (error,) = validate_annotations(over)
    assert error == FieldError("metadata.annotations", "", ANNOTATIONS_TOO_LONG_DETAIL)
    assert error.type == "FieldValueTooLong"
    assert str(error) == "metadata.annotations: Too long: may not be more than 262144 bytes"


@pytest.mark.parametrize(
    ("value", "quoted"),
    [
        ("plain", '"plain"'),
        ('say "hi"\\', '"say \\"hi\\"\\\\"'),
        ("tab\tnl\n", '"tab\\tnl\\n"'),
        ("\x00\x7f", '"\\x00\\x7f"'),
        ("é\u200b", '"é\\u200b"'),
    ],
)
def test_go_quote_matches_strconv_quote(value: str, quoted: str) -> None:
    assert go_quote(value) == quoted


# --------------------------------------------------------------------------------------------
# Properties

DNS_ISH = st.text(alphabet="abcXYZ019-._/", max_size=70)


@given(DNS_ISH)
def test_stricter_name_rules_imply_the_looser_ones(value: str) -> None:
    if not is_dns1035_label(value):
        assert is_dns1123_label(value) == []
    if not is_dns1123_label(value):
        assert is_dns1123_subdomain(value) == []
    if not is_dns1123_subdomain(value):
        assert is_valid_path_segment_name(value) == []


@given(DNS_ISH)
def test_every_non_empty_label_value_is_a_qualified_name(value: str) -> None:
    if value and not is_valid_label_value(value):
        assert is_qualified_name(value) == []


@given(st.text(max_size=80))
def test_validators_always_return_lists_of_strings(value: str) -> None:
    for validator in (
        is_dns1123_subdomain,
        is_dns1123_label,
        is_dns1035_label,
        is_qualified_name,
        is_valid_label_value,
        is_config_map_key,
        is_valid_path_segment_name,
    ):
        result = validator(value)
        assert isinstance(result, list)
        assert all(isinstance(message, str) and message for message in result)
