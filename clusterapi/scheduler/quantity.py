"""Exact parsing of resource quantities into the integer units the scheduler counts in.

The scheduler compares requests with allocatable capacity in the units upstream's
``resource.Quantity`` exposes: CPU in millicores (``MilliValue``) and everything else in
whole units (``Value``: bytes for memory and ephemeral storage, a count for pods and extended
resources). Both round *up*, as upstream does, so ``0.1m`` of CPU is 1 millicore and never 0.

Values are computed with ``fractions.Fraction`` (no binary floating point anywhere), and the
results are cached per string: a cluster repeats the same few quantities (``100m``,
``128Mi``) across thousands of pods.
"""

from __future__ import annotations

import functools
import re
from fractions import Fraction

_BINARY = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_SYNTAX = re.compile(r"^([+-]?)([0-9]+(?:\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+|[A-Za-z]*)$")


class QuantityError(ValueError):
    """A string that is not a Kubernetes quantity."""


@functools.lru_cache(maxsize=4096)
def parse(text: str) -> Fraction:
    """The exact value of a quantity string (``1.5Gi``, ``250m``, ``1e3``)."""
    match = _SYNTAX.match(text.strip())
    if match is None:
        raise QuantityError(f"quantities must match the regular expression: {text!r}")
    sign, digits, suffix = match.groups()
    value = Fraction(digits)
    if suffix in _BINARY:
        value *= 2 ** _BINARY[suffix]
    elif suffix in _DECIMAL:
        value *= Fraction(10) ** _DECIMAL[suffix]
    elif suffix[:1] in ("e", "E"):
        value *= Fraction(10) ** int(suffix[1:])
    else:
        raise QuantityError(f"unable to parse quantity's suffix: {text!r}")
    return -value if sign == "-" else value


def _ceil(value: Fraction) -> int:
    return -((-value.numerator) // value.denominator)


def _as_text(value: object) -> str:
    # Admission stores quantities as strings, but a number given for one is valid input too.
    if isinstance(value, bool):
        raise QuantityError(f"not a quantity: {value!r}")
    return value if isinstance(value, str) else str(value)


@functools.lru_cache(maxsize=4096)
def _milli(text: str) -> int:
    return _ceil(parse(text) * 1000)


@functools.lru_cache(maxsize=4096)
def _whole(text: str) -> int:
    return _ceil(parse(text))


def milli_value(value: object) -> int:
    """The quantity in thousandths, rounded up (CPU millicores)."""
    return _milli(_as_text(value))


def whole_value(value: object) -> int:
    """The quantity in whole units, rounded up (bytes, pods, extended resources)."""
    return _whole(_as_text(value))


def amount(resource: str, value: object) -> int:
    """A quantity of ``resource`` in the scheduler's unit: millicores for cpu, else units."""
    return milli_value(value) if resource == "cpu" else whole_value(value)
