"""Label and field selectors behave, print and fail exactly as apimachinery's.

Expected error strings were taken from kubectl 1.37.1 itself (``kubectl set selector
--local`` runs upstream's parser) and from upstream's documented examples.
"""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clusterapi.core.selectors import (
    DOES_NOT_EXIST,
    DOUBLE_EQUALS,
    EQUALS,
    EXISTS,
    GREATER_THAN,
    IN,
    LESS_THAN,
    NOT_EQUALS,
    NOT_IN,
    FieldRequirement,
    FieldSelector,
    LabelSelector,
    Requirement,
    SelectorError,
    escape_field_value,
    format_label_selector,
    from_label_selector,
    unescape_field_value,
)

LABEL_KEY_REGEX_ERROR = (
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
    "validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)
LABEL_VALUE_REGEX_ERROR = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or "
    "'my_value',  or '12345', regex used for validation is "
    "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)


# --------------------------------------------------------------------------------------------
# Label selector syntax


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("", ""),
        ("   ", ""),
        ("x=a", "x=a"),
        ("x==a", "x==a"),
        ("x!=a", "x!=a"),
        ("x = a , y  !=  b", "x=a,y!=b"),
        ("\tx\t=\ty\t", "x=y"),
        ("x", "x"),
        ("!x", "!x"),
        ("x in (b,a,a)", "x in (a,b)"),
        ("x notin (a)", "x notin (a)"),
        ("x in ()", "x in ()"),
        ("x in (,a,,b,)", "x in (,a,b)"),
        ("x=", "x="),
        ("x==,y", "x==,y"),
        ("x>5", "x>5"),
        ("x<10", "x<10"),
        ("example.com/tier=web", "example.com/tier=web"),
        # "in" and "notin" are keywords only in operator position.
        ("in in (in,notin)", "in in (in,notin)"),
        ("in=notin", "in=notin"),
        # Requirements come out sorted by key, each rendered canonically.
        ("x in (a,b),y notin (c), z, !w", "!w,x in (a,b),y notin (c),z"),
        (
            "environment in (production, qa),tier notin (frontend,backend),partition,!canary",
            "!canary,environment in (production,qa),partition,tier notin (backend,frontend)",
        ),
    ],
)
def test_parse_accepts_upstream_syntax_and_prints_canonical_form(text: str, canonical: str) -> None:
    assert str(LabelSelector.parse(text)) == canonical


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("x in (", "unable to parse requirement: found '', expected: ',', ')' or identifier"),
        ("x=(", "unable to parse requirement: found '(', expected: identifier"),
        ("!x=y", "found '=', expected: ',' or 'end of string'"),
        ("a,", "found '', expected: identifier after ','"),
        (",a", "found ',', expected: !, identifier, or 'end of string'"),
        ("!=x", "found '!=', expected: !, identifier, or 'end of string'"),
        ("x notin (a b)", "unable to parse requirement: found 'b', expected: ',' or ')'"),
        ("x in (a,=)", "unable to parse requirement: found '=', expected: ',', or identifier"),
        ("x in (a,", "unable to parse requirement: found '', expected: ',', or identifier"),
        ("x in", "unable to parse requirement: found '' expected: '('"),
        ("!!x", "unable to parse requirement: found '!', expected: identifier"),
        ("x=a=b", "found '=', expected: ',' or 'end of string'"),
        (
            "x y",
            "unable to parse requirement: found 'y', expected: in, notin, =, ==, !=, gt, lt",
        ),
        (
            "x>a",
            "unable to parse requirement: values[0]: Invalid value: \"a\": for 'Gt', 'Lt' "
            "operators, the value must be an integer",
        ),
        (
            "x>99999999999999999999",
            'unable to parse requirement: values[0]: Invalid value: "99999999999999999999": '
            "for 'Gt', 'Lt' operators, the value must be an integer",
        ),
        (
            "/c",
            'unable to parse requirement: <nil>: Invalid value: "/c": prefix part must be '
            "non-empty",
        ),
        (
            "a/b/c",
            'unable to parse requirement: <nil>: Invalid value: "a/b/c": a valid label key '
            + LABEL_KEY_REGEX_ERROR
            + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
        ),
        (
            "a" * 254 + "/k",
            f'unable to parse requirement: <nil>: Invalid value: "{"a" * 254}/k": prefix part '
            "must be no more than 253 bytes",
        ),
        (
            "k=" + "a" * 64,
            f'unable to parse requirement: values[0][k]: Invalid value: "{"a" * 64}": must be '
            "no more than 63 bytes",
        ),
        (
            "x=-a",
            'unable to parse requirement: values[0][x]: Invalid value: "-a": '
            + LABEL_VALUE_REGEX_ERROR,
        ),
        (
            # Several errors of one requirement are aggregated in brackets.
            "x>-a",
            "unable to parse requirement: [values[0]: Invalid value: \"-a\": for 'Gt', 'Lt' "
            'operators, the value must be an integer, values[0][x]: Invalid value: "-a": '
            + LABEL_VALUE_REGEX_ERROR
            + "]",
        ),
    ],
)
def test_parse_rejects_bad_selectors_with_upstream_messages(text: str, message: str) -> None:
    with pytest.raises(SelectorError) as info:
        LabelSelector.parse(text)
    assert str(info.value) == message
    assert info.value.message == message
    assert isinstance(info.value, ValueError)


def test_nul_byte_is_read_like_upstreams_end_of_input_sentinel() -> None:
    # Where a token would start, NUL ends the input; right after a token it is swallowed.
    assert str(LabelSelector.parse("x=a \0y=b")) == "x=a"
    assert str(LabelSelector.parse("x=a,\0y=b")) == "x=a,y=b"


# --------------------------------------------------------------------------------------------
# Label selector matching


@pytest.mark.parametrize(
    ("text", "labels", "selected"),
    [
        ("", {}, True),
        ("", None, True),
        ("x=a", {"x": "a"}, True),
        ("x=a", {"x": "b"}, False),
        ("x=a", {}, False),
        ("x==a", {"x": "a", "y": "b"}, True),
        ("x!=a", {"x": "b"}, True),
        ("x!=a", {"x": "a"}, False),
        ("x!=a", {}, True),  # != matches objects without the key
        ("x in (a,b)", {"x": "b"}, True),
        ("x in (a,b)", {"x": "c"}, False),
        ("x in (a,b)", {}, False),
        ("x notin (a,b)", {"x": "c"}, True),
        ("x notin (a,b)", {"x": "a"}, False),
        ("x notin (a,b)", {}, True),  # notin matches objects without the key
        ("x", {"x": ""}, True),
        ("x", {}, False),
        ("!x", {}, True),
        ("!x", {"x": "a"}, False),
        ("x=", {"x": ""}, True),
        ("x in ()", {"x": ""}, True),
        ("x>5", {"x": "6"}, True),
        ("x>5", {"x": "5"}, False),
        ("x>5", {"x": "abc"}, False),  # a non-integer label never satisfies gt/lt
        ("x>5", {}, False),
        ("x<5", {"x": "-7"}, True),
        ("x<5", {"x": "05"}, False),
        ("x=a,y=b", {"x": "a", "y": "b"}, True),
        ("x=a,y=b", {"x": "a"}, False),
    ],
)
def test_matches_follows_upstream_semantics(
    text: str, labels: Mapping[str, str] | None, selected: bool
) -> None:
    assert LabelSelector.parse(text).matches(labels) is selected


def test_empty_selector_selects_everything_and_nothing_selector_selects_nothing() -> None:
    everything = LabelSelector.parse("")
    assert everything.empty
    assert everything == LabelSelector.everything()
    assert not everything.matches_nothing
    nothing = LabelSelector.nothing()
    assert not nothing.empty
    assert nothing.matches_nothing
    assert not nothing.matches({})
    assert str(nothing) == ""
    assert nothing.add(Requirement("x", EXISTS)) is nothing
    assert not LabelSelector.parse("x").empty


def test_requires_exact_match_reports_the_single_required_value() -> None:
    selector = LabelSelector.parse("a=1,b in (2),c in (3,4),d!=5,e==6")
    assert selector.requires_exact_match("a") == "1"
    assert selector.requires_exact_match("b") == "2"
    assert selector.requires_exact_match("c") is None
    assert selector.requires_exact_match("d") is None
    assert selector.requires_exact_match("e") == "6"
    assert selector.requires_exact_match("missing") is None


def test_equal_selectors_compare_and_hash_equal() -> None:
    first = LabelSelector.parse("b=2, a in (y,x)")
    second = LabelSelector.parse("a in (x,y),b=2")
    assert first == second
    assert hash(first) == hash(second)
    assert repr(first) == "LabelSelector.parse('a in (x,y),b=2')"


def test_requirement_create_rejects_unknown_operators() -> None:
    with pytest.raises(SelectorError) as info:
        Requirement.create("x", "like", ["a"])
    assert str(info.value) == (
        'operator: Unsupported value: "like": supported values: "in", "notin", "=", "==", "!=", '
        '"gt", "lt", "exists", "!"'
    )


def test_from_set_builds_an_equality_selector() -> None:
    selector = LabelSelector.from_set({"tier": "web", "app": "x"})
    assert str(selector) == "app=x,tier=web"
    assert selector.matches({"app": "x", "tier": "web", "extra": "1"})
    assert LabelSelector.from_set(None).empty
    assert LabelSelector.from_set({}).empty
    with pytest.raises(SelectorError):
        LabelSelector.from_set({"bad key": "x"})
    assert str(LabelSelector.from_set({"bad key": "x"}, validate=False)) == "bad key=x"


# --------------------------------------------------------------------------------------------
# metav1.LabelSelector objects


def test_none_label_selector_selects_nothing_and_empty_one_everything() -> None:
    assert from_label_selector(None).matches_nothing
    assert not from_label_selector(None).matches({"a": "b"})
    assert from_label_selector({}).empty
    assert from_label_selector({"matchLabels": {}, "matchExpressions": []}).matches({"a": "b"})
    assert from_label_selector({"matchLabels": None}).empty


def test_label_selector_object_converts_labels_and_expressions() -> None:
    selector = from_label_selector(
        {
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["b", "a"]},
                {"key": "env", "operator": "NotIn", "values": ["prod"]},
                {"key": "team", "operator": "Exists"},
                {"key": "canary", "operator": "DoesNotExist", "values": []},
            ],
        }
    )
    assert str(selector) == "app=web,!canary,env notin (prod),team,tier in (a,b)"
    assert selector.matches({"app": "web", "team": "t", "tier": "a"})
    assert not selector.matches({"app": "web", "team": "t", "tier": "a", "canary": "1"})
    assert not selector.matches({"app": "web", "team": "t", "tier": "c"})


@pytest.mark.parametrize(
    ("selector", "message"),
    [
        (
            {"matchExpressions": [{"key": "x", "operator": "Equals", "values": ["a"]}]},
            '"Equals" is not a valid label selector operator',
        ),
        (
            {"matchExpressions": [{"key": "x"}]},
            '"" is not a valid label selector operator',
        ),
        (
            {"matchExpressions": [{"key": "x", "operator": "In", "values": []}]},
            "values: Invalid value: []string(nil): for 'in', 'notin' operators, values set "
            "can't be empty",
        ),
        (
            {"matchExpressions": [{"key": "x", "operator": "Exists", "values": ["a", "b"]}]},
            'values: Invalid value: []string{"a", "b"}: values set must be empty for exists and '
            "does not exist",
        ),
        (
            {"matchLabels": {"bad key": "x"}},
            'key: Invalid value: "bad key": name part ' + LABEL_KEY_REGEX_ERROR,
        ),
        (
            {"matchLabels": {"app": "bad value"}},
            'values[0][app]: Invalid value: "bad value": ' + LABEL_VALUE_REGEX_ERROR,
        ),
    ],
)
def test_bad_label_selector_objects_raise_upstream_messages(
    selector: Mapping[str, object], message: str
) -> None:
    with pytest.raises(SelectorError) as info:
        from_label_selector(selector)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("selector", "text"),
    [
        (None, "<none>"),
        ({}, "<none>"),
        ({"matchLabels": {"app": "x"}}, "app=x"),
        (
            {
                "matchLabels": {"app": "x"},
                "matchExpressions": [{"key": "tier", "operator": "In", "values": ["b", "a"]}],
            },
            "app=x,tier in (a,b)",
        ),
        ({"matchExpressions": [{"key": "x", "operator": "Bogus"}]}, "<error>"),
    ],
)
def test_format_label_selector_matches_upstream(
    selector: Mapping[str, object] | None, text: str
) -> None:
    assert format_label_selector(selector) == text


# --------------------------------------------------------------------------------------------
# Field selectors


def test_field_selector_parses_terms_sorted_and_normalises_double_equals() -> None:
    selector = FieldSelector.parse("status.phase!=Running,metadata.name==web")
    assert selector.requirements == [
        FieldRequirement("metadata.name", EQUALS, "web"),
        FieldRequirement("status.phase", NOT_EQUALS, "Running"),
    ]
    assert selector.fields == frozenset({"metadata.name", "status.phase"})
    assert str(selector) == "metadata.name=web,status.phase!=Running"
    assert not selector.empty


def test_empty_field_selector_selects_everything() -> None:
    for text in ("", ",", ",,"):
        selector = FieldSelector.parse(text)
        assert selector.empty
        assert selector.matches(lambda _field: "anything")
    assert FieldSelector.everything().empty


@pytest.mark.parametrize(
    ("text", "field", "value"),
    [
        (r"spec.x=a\,b", "spec.x", "a,b"),
        (r"spec.x=a\=b", "spec.x", "a=b"),
        (r"spec.x=a\\b", "spec.x", "a\\b"),
        ("spec.x=", "spec.x", ""),
        ("=v", "", "v"),
        ("a==b", "a", "b"),
    ],
)
def test_field_selector_unescapes_values(text: str, field: str, value: str) -> None:
    (requirement,) = FieldSelector.parse(text).requirements
    assert (requirement.field, requirement.value) == (field, value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("metadata.name", "invalid selector: 'metadata.name'; can't understand 'metadata.name'"),
        ("a=b,c", "invalid selector: 'a=b,c'; can't understand 'c'"),
        (r"a=b\x", "invalid field selector: invalid escape sequence: \\x"),
        ("a=b\\", "invalid field selector: invalid escape sequence: \\"),
        ("a=b=c", "invalid field selector: unescaped character in value: 61"),
        ("a=!=c", "invalid field selector: unescaped character in value: 61"),
    ],
)
def test_field_selector_errors_use_upstream_wording(text: str, message: str) -> None:
    with pytest.raises(SelectorError) as info:
        FieldSelector.parse(text)
    assert str(info.value) == message


def test_field_selector_matches_string_values_and_treats_missing_as_empty() -> None:
    fields = {"metadata.name": "web", "status.phase": "Running"}
    assert FieldSelector.parse("metadata.name=web").matches(fields.get)
    assert not FieldSelector.parse("metadata.name=db").matches(fields.get)
    assert FieldSelector.parse("status.phase!=Pending").matches(fields.get)
    assert not FieldSelector.parse("status.phase!=Running").matches(fields.get)
    assert FieldSelector.parse("spec.nodeName=").matches(fields.get)
    assert not FieldSelector.parse("spec.nodeName!=").matches(fields.get)


def test_field_selector_exact_match_helpers() -> None:
    selector = FieldSelector.parse("metadata.namespace=default,metadata.name=web")
    assert selector.exact_name == "web"
    assert selector.requires_exact_match("metadata.namespace") == "default"
    assert FieldSelector.parse("metadata.name!=web").exact_name is None
    assert FieldSelector.parse("").exact_name is None


def test_field_selector_reports_the_first_unsupported_field() -> None:
    selector = FieldSelector.parse("spec.bogus=1,metadata.name=x")
    selector.check_supported({"metadata.name", "spec.bogus"})
    with pytest.raises(SelectorError) as info:
        selector.check_supported({"metadata.name", "metadata.namespace"})
    assert str(info.value) == "field label not supported: spec.bogus"


def test_field_selector_equality_and_repr() -> None:
    assert FieldSelector.parse("b=1,a=2") == FieldSelector.parse("a=2,b==1")
    assert hash(FieldSelector.parse("a=1")) == hash(FieldSelector.parse("a==1"))
    assert repr(FieldSelector.parse(r"a=x\,y")) == "FieldSelector.parse('a=x\\\\,y')"


# --------------------------------------------------------------------------------------------
# Properties

KEYS = st.sampled_from(["a", "b", "app", "example.com/tier", "in", "notin"])
VALUES = st.sampled_from(["", "x", "y", "web", "in", "a.b_c-d"])
NUMBERS = st.integers(min_value=0, max_value=20).map(str)
LABELS = st.dictionaries(KEYS, st.one_of(VALUES, NUMBERS), max_size=6)


@st.composite
def requirements(draw: st.DrawFn) -> Requirement:
    key = draw(KEYS)
    operator = draw(
        st.sampled_from(
            [
                IN,
                NOT_IN,
                EQUALS,
                DOUBLE_EQUALS,
                NOT_EQUALS,
                EXISTS,
                DOES_NOT_EXIST,
                GREATER_THAN,
                LESS_THAN,
            ]
        )
    )
    if operator in (IN, NOT_IN):
        values = sorted(draw(st.sets(st.one_of(VALUES, NUMBERS), min_size=1, max_size=3)))
    elif operator in (EQUALS, DOUBLE_EQUALS, NOT_EQUALS):
        values = [draw(st.one_of(VALUES, NUMBERS))]
    elif operator in (GREATER_THAN, LESS_THAN):
        values = [draw(NUMBERS)]
    else:
        values = []
    return Requirement.create(key, operator, values)


@given(st.lists(requirements(), max_size=5), st.lists(LABELS, min_size=1, max_size=5))
def test_parsing_the_printed_form_gives_back_an_equivalent_selector(
    reqs: list[Requirement], label_sets: list[dict[str, str]]
) -> None:
    selector = LabelSelector(reqs)
    reparsed = LabelSelector.parse(str(selector))
    assert reparsed == selector
    assert str(reparsed) == str(selector)
    for labels in label_sets:
        assert reparsed.matches(labels) == selector.matches(labels)


@given(st.lists(requirements(), min_size=1, max_size=5), LABELS)
def test_a_selector_matches_exactly_when_every_requirement_does(
    reqs: list[Requirement], labels: dict[str, str]
) -> None:
    assert LabelSelector(reqs).matches(labels) == all(r.matches(labels) for r in reqs)


@given(st.text())
def test_escaped_field_values_unescape_to_themselves(value: str) -> None:
    assert unescape_field_value(escape_field_value(value)) == value
    (requirement,) = FieldSelector.parse("spec.x=" + escape_field_value(value)).requirements
    assert requirement.value == value


@given(st.text(alphabet=st.characters(blacklist_characters="\0")))
def test_label_parser_never_fails_with_anything_but_selector_error(text: str) -> None:
    try:
        selector = LabelSelector.parse(text)
    except SelectorError:
        return
    assert LabelSelector.parse(str(selector)) == selector
