"""Label and field selectors with Kubernetes' exact parsing, matching and error wording.

Role
----
``?labelSelector=`` and ``?fieldSelector=`` on list and watch requests, the ``selector``
fields of workloads (``metav1.LabelSelector`` objects), printer columns and the scale
subresource's ``status.selector`` all go through this module. Behaviour follows
apimachinery's ``pkg/labels/selector.go``, ``pkg/fields/selector.go`` and
``pkg/apis/meta/v1/helpers.go`` so that a selector kubectl or a client library accepts,
rejects, matches or prints behaves here exactly as on a real API server. Errors are raised
as ``SelectorError`` whose text is upstream's (the API answers it as 400 BadRequest).

It lives in ``core``, the bottom layer, because the API, the controllers, RBAC aggregation
and the scheduler all use it; it must not import from ``clusterapi.api``.

Flow
----
* ``LabelSelector.parse(text)``: a small lexer splits the text into symbols and identifiers
  (whitespace separates, ``=!(),<>`` are symbols, ``in``/``notin`` are keywords except where
  a value is expected); a recursive-descent parser builds one ``Requirement`` per
  comma-separated term, validating keys and values as labels; requirements are sorted by key.
  ``matches(labels)`` ANDs the requirements; ``str()`` gives the canonical form.
* ``from_label_selector(obj)`` converts ``{matchLabels, matchExpressions}`` the way
  ``LabelSelectorAsSelector`` does: ``None`` selects nothing, ``{}`` selects everything.
  ``format_label_selector`` is ``FormatLabelSelector`` (``<none>`` when empty).
* ``FieldSelector.parse(text)`` splits on unescaped commas, splits each term at its first
  ``!=``/``==``/``=`` and unescapes the value (``\\,`` ``\\=`` ``\\\\``). ``matches(get)``
  compares the strings ``get(field)`` returns; which fields a kind supports is the API
  layer's business (``check_supported`` raises upstream's "field label not supported").
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Final, NamedTuple

from clusterapi.admission.names import go_quote, is_qualified_name, is_valid_label_value

__all__ = [
    "DOES_NOT_EXIST",
    "DOUBLE_EQUALS",
    "EQUALS",
    "EXISTS",
    "GREATER_THAN",
    "IN",
    "LESS_THAN",
    "NOT_EQUALS",
    "NOT_IN",
    "FieldRequirement",
    "FieldSelector",
    "LabelSelector",
    "Requirement",
    "SelectorError",
    "escape_field_value",
    "format_label_selector",
    "from_label_selector",
    "unescape_field_value",
]


class SelectorError(ValueError):
    """A selector that cannot be parsed or built; ``str()`` is upstream's message."""

    @property
    def message(self) -> str:
        return str(self)


# ============================================================================================
# Label selectors
# ============================================================================================

# selection.Operator values, spelled as upstream spells them (they appear in error messages).
IN: Final = "in"
NOT_IN: Final = "notin"
EQUALS: Final = "="
DOUBLE_EQUALS: Final = "=="
NOT_EQUALS: Final = "!="
EXISTS: Final = "exists"
DOES_NOT_EXIST: Final = "!"
GREATER_THAN: Final = "gt"
LESS_THAN: Final = "lt"

# The order upstream lists them in "expected: ..." and "supported values: ..." messages.
_BINARY_OPERATORS: Final = (IN, NOT_IN, EQUALS, DOUBLE_EQUALS, NOT_EQUALS, GREATER_THAN, LESS_THAN)
_UNARY_OPERATORS: Final = (EXISTS, DOES_NOT_EXIST)
_ALL_OPERATORS: Final = _BINARY_OPERATORS + _UNARY_OPERATORS

# Go's strconv.ParseInt(s, 10, 64): optional sign, decimal digits, int64 range.
_INT_RE: Final = re.compile(r"[+-]?[0-9]+")
_INT64_MIN: Final = -(1 << 63)
_INT64_MAX: Final = (1 << 63) - 1


def _parse_int64(text: str) -> int | None:
    if not _INT_RE.fullmatch(text):
        return None
    number = int(text)
    return number if _INT64_MIN <= number <= _INT64_MAX else None


# --- field.Error formatting ------------------------------------------------------------------
# Upstream builds these errors as field.ErrorList and prints them; the path is nil (printed
# "<nil>") when the parser validates a key, and relative ("values[0][key]") otherwise.


def _child(path: str | None, name: str) -> str:
    return name if path is None else f"{path}.{name}"


def _invalid(path: str | None, shown_value: str, detail: str) -> str:
    return f"{'<nil>' if path is None else path}: Invalid value: {shown_value}: {detail}"


def _go_string_slice(values: Sequence[str]) -> str:
    # Go's %#v of a []string; an empty list came from append([]string(nil), ...) upstream,
    # so it prints as a nil slice.
    if not values:
        return "[]string(nil)"
    return "[]string{" + ", ".join(go_quote(v) for v in values) + "}"


def _aggregate(messages: list[str]) -> str:
    """utilerrors.Aggregate.Error(): one message as is, several deduplicated in brackets."""
    unique = list(dict.fromkeys(messages))
    return unique[0] if len(unique) == 1 else "[" + ", ".join(unique) + "]"


def _label_key_error(key: str, path: str | None) -> str | None:
    errs = is_qualified_name(key)
    return _invalid(path, go_quote(key), "; ".join(errs)) if errs else None


def _operator_errors(operator: str, vals: tuple[str, ...], path: str | None) -> list[str]:
    """The operator-specific checks of NewRequirement (value count, integer values)."""
    values_path = _child(path, "values")

    def invalid_values(detail: str) -> list[str]:
        return [_invalid(values_path, _go_string_slice(vals), detail)]

    if operator in (IN, NOT_IN):
        if not vals:
            return invalid_values("for 'in', 'notin' operators, values set can't be empty")
        return []
    if operator in (EQUALS, DOUBLE_EQUALS, NOT_EQUALS):
        if len(vals) != 1:
            return invalid_values("exact-match compatibility requires one single value")
        return []
    if operator in (EXISTS, DOES_NOT_EXIST):
        if vals:
            return invalid_values("values set must be empty for exists and does not exist")
        return []
    if operator in (GREATER_THAN, LESS_THAN):
        errors: list[str] = []
        if len(vals) != 1:
            errors += invalid_values("for 'Gt', 'Lt' operators, exactly one value is required")
        errors += [
            _invalid(
                f"{values_path}[{i}]",
                go_quote(value),
                "for 'Gt', 'Lt' operators, the value must be an integer",
            )
            for i, value in enumerate(vals)
            if _parse_int64(value) is None
        ]
        return errors
    supported = ", ".join(go_quote(op) for op in _ALL_OPERATORS)
    return [
        f"{_child(path, 'operator')}: Unsupported value: {go_quote(operator)}: "
        f"supported values: {supported}"
    ]


class Requirement(NamedTuple):
    """One term of a label selector: ``key``, an operator, and its values (may be empty).

    Build validated requirements with ``Requirement.create``; the plain constructor trusts
    its arguments (as upstream's struct literal does).
    """

    key: str
    operator: str
    values: tuple[str, ...] = ()

    @classmethod
    def create(
        cls, key: str, operator: str, values: Iterable[str] = (), path: str | None = None
    ) -> Requirement:
        """NewRequirement: validate the key, the operator's arity and each value.

        All problems are collected and raised together, aggregated as upstream prints them.
        """
        vals = tuple(values)
        errors: list[str] = []
        key_error = _label_key_error(key, _child(path, "key"))
        if key_error:
            errors.append(key_error)
        errors.extend(_operator_errors(operator, vals, path))
        values_path = _child(path, "values")
        for i, value in enumerate(vals):
            value_errors = is_valid_label_value(value)
            if value_errors:
                shown = go_quote(value)
                detail = "; ".join(value_errors)
                errors.append(_invalid(f"{values_path}[{i}][{key}]", shown, detail))
        if errors:
            raise SelectorError(_aggregate(errors))
        return cls(key, operator, vals)

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether ``labels`` satisfy this term (``!=``/``notin`` match an absent key)."""
        op = self.operator
        if op in (IN, EQUALS, DOUBLE_EQUALS):
            return self.key in labels and labels[self.key] in self.values
        if op in (NOT_IN, NOT_EQUALS):
            return self.key not in labels or labels[self.key] not in self.values
        if op == EXISTS:
            return self.key in labels
        if op == DOES_NOT_EXIST:
            return self.key not in labels
        if op in (GREATER_THAN, LESS_THAN):
            if self.key not in labels or len(self.values) != 1:
                return False
            have = _parse_int64(labels[self.key])
            want = _parse_int64(self.values[0])
            if have is None or want is None:
                return False
            return have > want if op == GREATER_THAN else have < want
        return False

    def __str__(self) -> str:
        op = self.operator
        if op == EXISTS:
            return self.key
        if op == DOES_NOT_EXIST:
            return "!" + self.key
        # Several values print sorted (upstream normalises output, not the stored order).
        values = self.values[0] if len(self.values) == 1 else ",".join(sorted(self.values))
        if op in (IN, NOT_IN):
            return f"{self.key} {op} ({values})"
        symbol = {GREATER_THAN: ">", LESS_THAN: "<"}.get(op, op)
        return f"{self.key}{symbol}{values}"


class LabelSelector:
    """An AND of ``Requirement``s, or the special selector that matches nothing.

    ``LabelSelector()`` (and ``parse("")``) selects everything; ``LabelSelector.nothing()`` is
    what a ``None`` ``metav1.LabelSelector`` converts to. Requirements are kept sorted by key,
    as upstream does, so equal selectors print and compare equal.
    """

    __slots__ = ("_nothing", "_requirements")

    def __init__(self, requirements: Iterable[Requirement] = (), *, nothing: bool = False):
        # sorted() is stable, like the insertion sort upstream uses for small selectors, so
        # requirements sharing a key keep their relative order.
        self._requirements: tuple[Requirement, ...] = tuple(
            sorted(requirements, key=lambda r: r.key)
        )
        self._nothing = nothing

    # --- construction ---------------------------------------------------------------------

    @classmethod
    def parse(cls, text: str) -> LabelSelector:
        """Parse the string syntax of ``?labelSelector=`` (``labels.Parse``)."""
        return cls(_Parser(text).parse())

    @classmethod
    def everything(cls) -> LabelSelector:
        return cls()

    @classmethod
    def nothing(cls) -> LabelSelector:
        return cls(nothing=True)

    @classmethod
    def from_set(cls, labels: Mapping[str, str] | None, validate: bool = True) -> LabelSelector:
        """A selector requiring exactly ``labels`` (``SelectorFromSet``); empty = everything.

        With ``validate`` the keys and values are checked as ``ValidatedSelectorFromSet``
        does; without it they are trusted (e.g. a Service's already-admitted ``spec.selector``).
        """
        if not labels:
            return cls()
        if validate:
            return cls(Requirement.create(k, EQUALS, [v]) for k, v in sorted(labels.items()))
        return cls(Requirement(k, EQUALS, (v,)) for k, v in labels.items())

    def add(self, *requirements: Requirement) -> LabelSelector:
        """A new selector with ``requirements`` ANDed in (a nothing-selector stays nothing)."""
        if self._nothing:
            return self
        return LabelSelector(self._requirements + requirements)

    # --- inspection -----------------------------------------------------------------------

    @property
    def requirements(self) -> tuple[Requirement, ...]:
        return self._requirements

    @property
    def empty(self) -> bool:
        """True when the selector does not restrict anything (selects everything)."""
        return not self._nothing and not self._requirements

    @property
    def matches_nothing(self) -> bool:
        """True only for the nothing-selector (conflicting terms are not detected)."""
        return self._nothing

    def requires_exact_match(self, key: str) -> str | None:
        """The single value ``key`` must have (``=``, ``==`` or one-value ``in``), if any.

        Like upstream, only the first requirement on ``key`` is consulted.
        """
        for requirement in self._requirements:
            if requirement.key == key:
                if requirement.operator in (EQUALS, DOUBLE_EQUALS, IN) and (
                    len(requirement.values) == 1
                ):
                    return requirement.values[0]
                return None
        return None

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        """Whether an object with ``labels`` (``None`` = no labels) is selected."""
        if self._nothing:
            return False
        present: Mapping[str, str] = labels or {}
        return all(requirement.matches(present) for requirement in self._requirements)

    def __str__(self) -> str:
        return ",".join(str(requirement) for requirement in self._requirements)

    def __repr__(self) -> str:
        if self._nothing:
            return "LabelSelector.nothing()"
        return f"LabelSelector.parse({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LabelSelector):
            return NotImplemented
        return (self._nothing, self._requirements) == (other._nothing, other._requirements)

    def __hash__(self) -> int:
        return hash((self._nothing, self._requirements))


# --- lexer -----------------------------------------------------------------------------------


class _Tok(enum.Enum):
    # Upstream's ErrorToken is omitted: every symbol character is itself a symbol, so the
    # lexer cannot fail.
    END = enum.auto()
    CLOSED_PAR = enum.auto()
    COMMA = enum.auto()
    DOES_NOT_EXIST = enum.auto()
    DOUBLE_EQUALS = enum.auto()
    EQUALS = enum.auto()
    GREATER_THAN = enum.auto()
    IDENTIFIER = enum.auto()
    IN = enum.auto()
    LESS_THAN = enum.auto()
    NOT_EQUALS = enum.auto()
    NOT_IN = enum.auto()
    OPEN_PAR = enum.auto()


_SYMBOLS: Final = {
    ")": _Tok.CLOSED_PAR,
    ",": _Tok.COMMA,
    "!": _Tok.DOES_NOT_EXIST,
    "==": _Tok.DOUBLE_EQUALS,
    "=": _Tok.EQUALS,
    ">": _Tok.GREATER_THAN,
    "in": _Tok.IN,
    "<": _Tok.LESS_THAN,
    "!=": _Tok.NOT_EQUALS,
    "notin": _Tok.NOT_IN,
    "(": _Tok.OPEN_PAR,
}
_SPECIAL: Final = frozenset("=!(),><")
_WHITESPACE: Final = frozenset(" \t\r\n")
# Upstream's reader returns byte 0 both at the end of input and for a literal NUL, so a NUL
# ends the selector where a token would start and is swallowed after a token.
_NUL: Final = "\0"
_IDENTIFIER_STOP: Final = _SPECIAL | _WHITESPACE | {_NUL}


def _lex(text: str) -> list[tuple[_Tok, str]]:
    """Split ``text`` into (token, literal) pairs, ending with ``_Tok.END``."""
    items: list[tuple[_Tok, str]] = []
    pos, end = 0, len(text)
    while True:
        while pos < end and text[pos] in _WHITESPACE:
            pos += 1
        if pos >= end or text[pos] == _NUL:
            items.append((_Tok.END, ""))
            return items
        start = pos
        if text[pos] in _SPECIAL:
            # Longest run of symbol characters that still spells a symbol ("!=", "==").
            pos += 1
            while pos < end and text[pos] in _SPECIAL and text[start : pos + 1] in _SYMBOLS:
                pos += 1
        else:
            while pos < end and text[pos] not in _IDENTIFIER_STOP:
                pos += 1
        literal = text[start:pos]
        if pos < end and text[pos] == _NUL:
            pos += 1
        items.append((_SYMBOLS.get(literal, _Tok.IDENTIFIER), literal))


# --- parser ----------------------------------------------------------------------------------


class _Parser:
    """Recursive descent over the token list, mirroring upstream's grammar and messages.

    ``in``/``notin`` are keywords only where an operator is expected; wherever a key or a
    value is expected they are plain identifiers (``in in (in)`` is a valid selector).
    """

    def __init__(self, text: str) -> None:
        self._items = _lex(text)
        self._position = 0

    def _peek(self, *, values: bool = True) -> tuple[_Tok, str]:
        tok, literal = self._items[min(self._position, len(self._items) - 1)]
        if values and tok in (_Tok.IN, _Tok.NOT_IN):
            tok = _Tok.IDENTIFIER
        return tok, literal

    def _next(self, *, values: bool = True) -> tuple[_Tok, str]:
        item = self._peek(values=values)
        self._position += 1
        return item

    def parse(self) -> list[Requirement]:
        requirements: list[Requirement] = []
        while True:
            tok, literal = self._peek()
            if tok == _Tok.END:
                return requirements
            if tok not in (_Tok.IDENTIFIER, _Tok.DOES_NOT_EXIST):
                raise SelectorError(
                    f"found '{literal}', expected: !, identifier, or 'end of string'"
                )
            try:
                requirements.append(self._requirement())
            except SelectorError as exc:
                raise SelectorError(f"unable to parse requirement: {exc}") from None
            tok, literal = self._next()
            if tok == _Tok.END:
                return requirements
            if tok != _Tok.COMMA:
                raise SelectorError(f"found '{literal}', expected: ',' or 'end of string'")
            tok, literal = self._peek()
            if tok not in (_Tok.IDENTIFIER, _Tok.DOES_NOT_EXIST):
                raise SelectorError(f"found '{literal}', expected: identifier after ','")

    def _requirement(self) -> Requirement:
        key, operator = self._key_and_inferred_operator()
        if operator in (EXISTS, DOES_NOT_EXIST):
            return Requirement.create(key, operator)
        operator = self._operator()
        values = self._value_set() if operator in (IN, NOT_IN) else self._exact_value()
        # Upstream collects values in a string set and hands its sorted list on.
        return Requirement.create(key, operator, sorted(values))

    def _key_and_inferred_operator(self) -> tuple[str, str | None]:
        operator: str | None = None
        tok, literal = self._next()
        if tok == _Tok.DOES_NOT_EXIST:
            operator = DOES_NOT_EXIST
            tok, literal = self._next()
        if tok != _Tok.IDENTIFIER:
            raise SelectorError(f"found '{literal}', expected: identifier")
        key_error = _label_key_error(literal, None)
        if key_error:
            raise SelectorError(key_error)
        if self._peek()[0] in (_Tok.END, _Tok.COMMA) and operator is None:
            operator = EXISTS
        return literal, operator

    def _operator(self) -> str:
        tok, literal = self._next(values=False)
        operator = {
            _Tok.IN: IN,
            _Tok.EQUALS: EQUALS,
            _Tok.DOUBLE_EQUALS: DOUBLE_EQUALS,
            _Tok.GREATER_THAN: GREATER_THAN,
            _Tok.LESS_THAN: LESS_THAN,
            _Tok.NOT_IN: NOT_IN,
            _Tok.NOT_EQUALS: NOT_EQUALS,
        }.get(tok)
        if operator is None:
            raise SelectorError(f"found '{literal}', expected: {', '.join(_BINARY_OPERATORS)}")
        return operator

    def _value_set(self) -> set[str]:
        tok, literal = self._next()
        if tok != _Tok.OPEN_PAR:
            raise SelectorError(f"found '{literal}' expected: '('")
        tok, literal = self._peek()
        if tok in (_Tok.IDENTIFIER, _Tok.COMMA):
            values = self._identifier_list()
            if self._next()[0] != _Tok.CLOSED_PAR:
                # Unreachable in practice (the list only ends before ')'); kept for parity,
                # including upstream's choice of literal.
                raise SelectorError(f"found '{literal}', expected: ')'")
            return values
        if tok == _Tok.CLOSED_PAR:
            self._next()
            return {""}  # "()" is the set holding the empty value
        raise SelectorError(f"found '{literal}', expected: ',', ')' or identifier")

    def _identifier_list(self) -> set[str]:
        # Empty entries are the empty value: "(,a)", "(a,)", "(a,,b)" all include "".
        values: set[str] = set()
        while True:
            tok, literal = self._next()
            if tok == _Tok.IDENTIFIER:
                values.add(literal)
                following, following_literal = self._peek()
                if following == _Tok.COMMA:
                    continue
                if following == _Tok.CLOSED_PAR:
                    return values
                raise SelectorError(f"found '{following_literal}', expected: ',' or ')'")
            if tok == _Tok.COMMA:
                if not values:
                    values.add("")
                following, _ = self._peek()
                if following == _Tok.CLOSED_PAR:
                    values.add("")
                    return values
                if following == _Tok.COMMA:
                    values.add("")
                continue
            raise SelectorError(f"found '{literal}', expected: ',', or identifier")

    def _exact_value(self) -> set[str]:
        tok, _ = self._peek()
        if tok in (_Tok.END, _Tok.COMMA):
            return {""}  # "k=" selects the empty value
        tok, literal = self._next()
        if tok == _Tok.IDENTIFIER:
            return {literal}
        raise SelectorError(f"found '{literal}', expected: identifier")


# --- metav1.LabelSelector --------------------------------------------------------------------

_EXPRESSION_OPERATORS: Final = {
    "In": IN,
    "NotIn": NOT_IN,
    "Exists": EXISTS,
    "DoesNotExist": DOES_NOT_EXIST,
}


def _string(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise SelectorError(f"{what}: Invalid value: {value!r}: must be a string")
    return value


def from_label_selector(sel: Mapping[str, object] | None) -> LabelSelector:
    """``LabelSelectorAsSelector``: convert a ``metav1.LabelSelector`` object.

    ``None`` selects nothing; an object with no ``matchLabels`` and no ``matchExpressions``
    selects everything. Invalid keys, values or operators raise ``SelectorError``.
    """
    if sel is None:
        return LabelSelector.nothing()
    match_labels = sel.get("matchLabels") or {}
    expressions = sel.get("matchExpressions") or []
    if not isinstance(match_labels, Mapping) or not isinstance(expressions, Sequence):
        raise SelectorError("matchLabels must be an object and matchExpressions a list")
    if len(match_labels) + len(expressions) == 0:
        return LabelSelector.everything()
    requirements: list[Requirement] = []
    # Upstream walks a Go map (random order); sorting makes the first error deterministic.
    for key in sorted(match_labels, key=str):
        value = _string(match_labels[key], "matchLabels")
        requirements.append(Requirement.create(_string(key, "matchLabels"), EQUALS, [value]))
    for expression in expressions:
        if not isinstance(expression, Mapping):
            raise SelectorError("matchExpressions: each entry must be an object")
        raw_operator = expression.get("operator", "")
        operator = (
            _EXPRESSION_OPERATORS.get(raw_operator) if isinstance(raw_operator, str) else None
        )
        if operator is None:
            raise SelectorError(
                f"{go_quote(str(raw_operator))} is not a valid label selector operator"
            )
        raw_values = expression.get("values") or []
        if not isinstance(raw_values, Sequence) or isinstance(raw_values, str):
            raise SelectorError("matchExpressions: values must be a list")
        values = [_string(v, "values") for v in raw_values]
        key = _string(expression.get("key", ""), "key")
        requirements.append(Requirement.create(key, operator, values))
    return LabelSelector(requirements)


def format_label_selector(sel: Mapping[str, object] | None) -> str:
    """``FormatLabelSelector``: the canonical string, ``<none>`` if empty, ``<error>`` if bad."""
    try:
        text = str(from_label_selector(sel))
    except SelectorError:
        return "<error>"
    return text or "<none>"


# ============================================================================================
# Field selectors
# ============================================================================================


class FieldRequirement(NamedTuple):
    """One term of a field selector; ``operator`` is ``=`` (also for ``==``) or ``!=``."""

    field: str
    operator: str
    value: str

    def __str__(self) -> str:
        return f"{self.field}{self.operator}{escape_field_value(self.value)}"


_FIELD_TERM_OPERATORS: Final = (NOT_EQUALS, DOUBLE_EQUALS, EQUALS)


def escape_field_value(value: str) -> str:
    """Escape ``\\``, ``,`` and ``=`` so ``value`` survives a field selector round trip."""
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")


def unescape_field_value(value: str) -> str:
    """Undo ``escape_field_value``; bare ``,``/``=`` and unknown escapes are errors."""
    if not any(ch in value for ch in "\\,="):
        return value
    out: list[str] = []
    in_slash = False
    for ch in value:
        if in_slash:
            if ch not in "\\,=":
                raise SelectorError(f"invalid field selector: invalid escape sequence: \\{ch}")
            out.append(ch)
            in_slash = False
        elif ch == "\\":
            in_slash = True
        elif ch in ",=":
            # Upstream prints the rune with %v, i.e. as its code point number.
            raise SelectorError(f"invalid field selector: unescaped character in value: {ord(ch)}")
        else:
            out.append(ch)
    if in_slash:
        raise SelectorError("invalid field selector: invalid escape sequence: \\")
    return "".join(out)


def _split_terms(text: str) -> list[str]:
    # Commas separate terms unless escaped; the escape stays in the term for unescaping later.
    if not text:
        return []
    terms: list[str] = []
    start = 0
    in_slash = False
    for i, ch in enumerate(text):
        if in_slash:
            in_slash = False
        elif ch == "\\":
            in_slash = True
        elif ch == ",":
            terms.append(text[start:i])
            start = i + 1
    terms.append(text[start:])
    return terms


def _split_term(term: str) -> tuple[str, str, str] | None:
    # The field part has no escaping: the first operator occurrence is the split point, and
    # at each position "!=" and "==" win over "=".
    for i in range(len(term)):
        for operator in _FIELD_TERM_OPERATORS:
            if term.startswith(operator, i):
                return term[:i], operator, term[i + len(operator) :]
    return None


class FieldSelector:
    """An AND of ``field=value`` / ``field!=value`` terms over an object's selectable fields."""

    __slots__ = ("_requirements",)

    def __init__(self, requirements: Iterable[FieldRequirement] = ()) -> None:
        self._requirements: tuple[FieldRequirement, ...] = tuple(requirements)

    @classmethod
    def parse(cls, text: str) -> FieldSelector:
        """Parse the string syntax of ``?fieldSelector=`` (``fields.ParseSelector``)."""
        requirements: list[FieldRequirement] = []
        # Upstream sorts the raw terms (so output and error order are deterministic).
        for term in sorted(_split_terms(text)):
            if not term:
                continue
            split = _split_term(term)
            if split is None:
                raise SelectorError(f"invalid selector: '{text}'; can't understand '{term}'")
            field, operator, raw_value = split
            value = unescape_field_value(raw_value)
            requirements.append(
                FieldRequirement(field, NOT_EQUALS if operator == NOT_EQUALS else EQUALS, value)
            )
        return cls(requirements)

    @classmethod
    def everything(cls) -> FieldSelector:
        return cls()

    @property
    def requirements(self) -> list[FieldRequirement]:
        return list(self._requirements)

    @property
    def fields(self) -> frozenset[str]:
        """The field names the selector uses (to check them against the kind's supported set)."""
        return frozenset(requirement.field for requirement in self._requirements)

    @property
    def empty(self) -> bool:
        return not self._requirements

    def requires_exact_match(self, field: str) -> str | None:
        """The value an ``=`` term requires of ``field`` (the first such term), if any."""
        for requirement in self._requirements:
            if requirement.field == field and requirement.operator == EQUALS:
                return requirement.value
        return None

    @property
    def exact_name(self) -> str | None:
        """The name a ``metadata.name=<name>`` term pins the list to (a get fast path)."""
        return self.requires_exact_match("metadata.name")

    def check_supported(self, supported: Iterable[str]) -> None:
        """Raise upstream's "field label not supported" for the first unknown field."""
        allowed = frozenset(supported)
        for requirement in self._requirements:
            if requirement.field not in allowed:
                raise SelectorError(f"field label not supported: {requirement.field}")

    def matches(self, get: Callable[[str], str | None]) -> bool:
        """Whether the object whose field values ``get`` returns is selected.

        A ``None`` from ``get`` counts as the empty string, as upstream's ``fields.Set``
        yields "" for a field it does not have.
        """
        for requirement in self._requirements:
            actual = get(requirement.field) or ""
            if (actual == requirement.value) != (requirement.operator == EQUALS):
                return False
        return True

    def __str__(self) -> str:
        return ",".join(str(requirement) for requirement in self._requirements)

    def __repr__(self) -> str:
        return f"FieldSelector.parse({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FieldSelector):
            return NotImplemented
        return self._requirements == other._requirements

    def __hash__(self) -> int:
        return hash(self._requirements)
