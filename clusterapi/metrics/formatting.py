"""How metrics-server writes figures: resource quantities and durations, exactly as Go does.

* CPU is ``resource.NewScaledQuantity(nanocores, -9)`` (DecimalSI): the canonical form strips
  trailing zeros into the largest SI suffix whose exponent is a multiple of three, so
  ``12345000`` nanocores is ``"12345u"``, ``5000000`` is ``"5m"`` and ``2000000000`` is ``"2"``.
* Memory is ``resource.NewQuantity(bytes, BinarySI)``: powers of 1024 are folded into ``Ki``,
  ``Mi``, ... (``"1234Ki"``); a value below 1024 or not divisible by 1024 is plain bytes.
* ``window`` is a ``metav1.Duration``: Go's ``time.Duration.String()`` (``"15.012s"``,
  ``"1m0.5s"``, ``"500ms"``).
* ``timestamp`` and ``creationTimestamp`` are ``metav1.Time``: RFC 3339, whole seconds, UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime

_DECIMAL_SUFFIXES = {-9: "n", -6: "u", -3: "m", 0: "", 3: "k", 6: "M", 9: "G", 12: "T", 15: "P"}
_BINARY_SUFFIXES = ("", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei")


def _strip_factors(value: int, base: int) -> tuple[int, int]:
    times = 0
    while value >= base and value % base == 0:
        value //= base
        times += 1
    return value, times


def _decimal(mantissa: int, exponent: int) -> str:
    """A non-negative ``mantissa * 10**exponent`` in canonical DecimalSI form."""
    if mantissa == 0:
        return "0"
    amount, times = _strip_factors(mantissa, 10)
    exponent += times
    # The exponent must be a multiple of three (Python's % keeps the sign of the divisor).
    shift = exponent % 3
    amount *= 10**shift
    exponent -= shift
    while exponent > 15:
        amount *= 1000
        exponent -= 3
    return f"{amount}{_DECIMAL_SUFFIXES[exponent]}"


def cpu_quantity(nanocores: int) -> str:
    """CPU usage as metrics-server serves it (``"12345n"``, ``"5m"``, ``"1500m"``)."""
    return _decimal(max(int(nanocores), 0), -9)


def memory_quantity(size: int) -> str:
    """Memory usage as metrics-server serves it (``"1234Ki"``, ``"64Mi"``, ``"1000"``)."""
    size = max(int(size), 0)
    if size < 1024:
        return _decimal(size, 0)
    _, times = _strip_factors(size, 1024)
    times = min(times, len(_BINARY_SUFFIXES) - 1)
    return f"{size // 1024**times}{_BINARY_SUFFIXES[times]}"


def _fraction(value: int, digits: int) -> str:
    text = str(value).rjust(digits, "0").rstrip("0")
    return f".{text}" if text else ""


def go_duration(nanoseconds: int) -> str:
    """Go's ``time.Duration.String()`` of a non-negative duration."""
    ns = max(int(nanoseconds), 0)
    if ns == 0:
        return "0s"
    if ns < 1_000:
        return f"{ns}ns"
    if ns < 1_000_000:
        return f"{ns // 1_000}{_fraction(ns % 1_000, 3)}µs"
    if ns < 1_000_000_000:
        return f"{ns // 1_000_000}{_fraction(ns % 1_000_000, 6)}ms"
    seconds, rest = divmod(ns, 1_000_000_000)
    text = f"{seconds % 60}{_fraction(rest, 9)}s"
    minutes = seconds // 60
    if minutes:
        text = f"{minutes % 60}m{text}"
        if minutes >= 60:
            text = f"{minutes // 60}h{text}"
    return text


def window(seconds: float) -> str:
    """A sample's window (seconds, as stored) as metrics-server's ``window`` field."""
    return go_duration(round(seconds * 1_000_000_000))


def timestamp(moment: datetime) -> str:
    """A ``metav1.Time``: RFC 3339 in UTC, whole seconds."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
