"""The columns ``kubectl get`` prints for every built-in kind, computed on the server.

Real kubectl asks list and get requests for ``Accept: application/json;as=Table;v=v1;
g=meta.k8s.io`` and prints whatever meta.k8s.io/v1 Table comes back: the server chooses the
columns and formats every cell. Upstream does that in ``pkg/printers/internalversion/
printers.go``; this module is Berth's equivalent, reproducing the same columns (names, types,
priorities, descriptions) and the same cell formatting rules for Kubernetes 1.37.

The flow: the API layer looks the kind up with :func:`columns_for` (kinds without a printer,
such as Role, ClusterRole and LimitRange, get :data:`DEFAULT_COLUMNS`, the ``Name`` /
``Created At`` pair of upstream's default table convertor), emits :func:`column_definitions`
as the Table's ``columnDefinitions`` and, for each object, :func:`table_row_cells` as a row's
``cells``. Every :class:`~clusterapi.resources.registry.Column` holds a ``cell`` function that
computes one cell from the object's JSON exactly as served (apiVersion, kind, metadata, spec,
status).

Upstream's table convertor always asks the printers for the wide form, so a row carries every
column and kubectl hides the ``priority: 1`` ones unless ``-o wide`` is given. Upstream cells see
objects after defaulting (a created pod always has ``status.phase``, a Service a ``type``);
Berth may hold objects that were stored before defaulting filled them in, so where a missing
field would change what kubectl shows, the cell falls back to the value upstream's defaulting
would have given it. Cells never raise: partial objects (missing spec or status, nulls, wrong
types) print the placeholders upstream prints (``<none>``, ``<unknown>``, ``0``...).

Ages are relative to :func:`now`, a module-level function that tests monkeypatch.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Any

from clusterapi.resources.registry import Column, Obj

__all__ = [
    "COLUMNS",
    "DEFAULT_COLUMNS",
    "column_definitions",
    "columns_for",
    "effective_default_storage_class",
    "format_label_selector",
    "format_labels",
    "format_quantity",
    "human_duration",
    "now",
    "table_row_cells",
]


def now() -> datetime:
    """The current time, which ages are measured against. Tests monkeypatch this."""
    return datetime.now(UTC)


# ---------------------------------------------------------------------------------------------
# Tolerant access to the object's JSON: a cell must never raise, whatever is stored.
# ---------------------------------------------------------------------------------------------


def _dig(obj: Any, *path: str) -> Any:
    """``obj[path[0]][path[1]]...``, or None as soon as a step is missing or not an object."""
    for key in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _dicts(value: Any) -> list[dict[str, Any]]:
    """The object entries of a JSON list (non-object entries are skipped)."""
    return [item for item in _list(value) if isinstance(item, dict)]


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _int(value: Any) -> int:
    # bool is an int subclass in Python; a JSON true is not a count.
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return 0


def _opt_int(value: Any) -> int | None:
    """An integer field that may be unset (Go's ``*int32``)."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _name(obj: Obj) -> str:
    return _str(_dig(obj, "metadata", "name"))


def _spec(obj: Obj) -> dict[str, Any]:
    return _dict(_dig(obj, "spec"))


def _status(obj: Obj) -> dict[str, Any]:
    return _dict(_dig(obj, "status"))


def _deleting(obj: Obj) -> bool:
    return _dig(obj, "metadata", "deletionTimestamp") is not None


# ---------------------------------------------------------------------------------------------
# Time: apimachinery's duration.HumanDuration and the printers' "translateTimestampSince".
# ---------------------------------------------------------------------------------------------


def _parse_time(value: Any) -> datetime | None:
    """An RFC 3339 timestamp (metav1.Time or MicroTime) as an aware datetime; None if unset."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _trunc_div(numerator: int, denominator: int) -> int:
    """Integer division truncating toward zero, as Go's integer conversions do."""
    quotient = abs(numerator) // denominator
    return quotient if numerator >= 0 else -quotient


_US_PER_SECOND = 1_000_000
_US_PER_MINUTE = 60 * _US_PER_SECOND
_US_PER_HOUR = 60 * _US_PER_MINUTE


def human_duration(delta: timedelta) -> str:
    """kubectl's succinct age (``5s``, ``3m20s``, ``2h15m``, ``3d4h``, ``45d``, ``2y100d``).

    Mirrors apimachinery's ``duration.HumanDuration``: about two significant figures, finer
    units only while they still matter. Up to two seconds in the future (clock skew between
    machines) reads as ``0s``; further in the future is ``<invalid>``.
    """
    micros = (delta.days * 86_400 + delta.seconds) * _US_PER_SECOND + delta.microseconds
    seconds = _trunc_div(micros, _US_PER_SECOND)
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 60 * 2:
        return f"{seconds}s"
    minutes = micros // _US_PER_MINUTE
    if minutes < 10:
        rest = seconds % 60
        return f"{minutes}m" if rest == 0 else f"{minutes}m{rest}s"
    if minutes < 60 * 3:
        return f"{minutes}m"
    hours = micros // _US_PER_HOUR
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h" if rest == 0 else f"{hours}h{rest}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{hours // 24}d" if rest == 0 else f"{hours // 24}d{rest}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        years = hours // 24 // 365
        return f"{years}y" if days == 0 else f"{years}y{days}d"
    return f"{hours // 24 // 365}y"


class Ago(str):
    """A cell that reads the time elapsed since ``moment``, through ``template``.

    It is the rendered text (a ``str``), and it remembers how it was made, so that a Table row
    computed once and stored (``clusterapi.resources.stored_rows``) can be brought up to date
    when it is served. Cells only make these inside ``deferred_ages()``.
    """

    moment: datetime
    template: str

    def __new__(cls, moment: datetime, template: str) -> Ago:
        text = super().__new__(cls, template.format(human_duration(now() - moment)))
        text.moment, text.template = moment, template
        return text


_deferred = threading.local()


@contextmanager
def deferred_ages() -> Iterator[None]:
    """Within this block, cells that depend on the current time come back as ``Ago``."""
    _deferred.on = True
    try:
        yield
    finally:
        _deferred.on = False


def _ago(moment: datetime, template: str = "{}") -> str:
    """``template`` with the time elapsed since ``moment`` (an ``Ago`` when deferred)."""
    if getattr(_deferred, "on", False):
        return Ago(moment, template)
    return template.format(human_duration(now() - moment))


def _since(value: Any) -> str:
    """Time elapsed since a timestamp, or ``<unknown>`` when it is unset."""
    moment = _parse_time(value)
    if moment is None:
        return "<unknown>"
    return _ago(moment)


def _age(obj: Obj) -> str:
    return _since(_dig(obj, "metadata", "creationTimestamp"))


def _created_at(obj: Obj) -> str:
    """The default convertor's ``Created At``: RFC 3339 in UTC, whole seconds."""
    moment = _parse_time(_dig(obj, "metadata", "creationTimestamp"))
    if moment is None:
        # Go formats the zero metav1.Time like this.
        return "0001-01-01T00:00:00Z"
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------------------------------------
# Labels and selectors: labels.FormatLabels and metav1.FormatLabelSelector.
# ---------------------------------------------------------------------------------------------

_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def _valid_label_key(key: str) -> bool:
    prefix, slash, name = key.rpartition("/")
    if slash and not (prefix and len(prefix) <= 253 and _DNS_SUBDOMAIN.match(prefix)):
        return False
    return len(name) <= 63 and bool(_LABEL_NAME.match(name))


def _valid_label_value(value: str) -> bool:
    return value == "" or (len(value) <= 63 and bool(_LABEL_NAME.match(value)))


def format_labels(labels: Any) -> str:
    """``a=b,c=d`` with keys sorted, ``<none>`` when empty (``labels.FormatLabels``)."""
    pairs = _dict(labels)
    if not pairs:
        return "<none>"
    return ",".join(f"{key}={_str(pairs[key])}" for key in sorted(pairs))


# metav1.LabelSelectorOperator -> how labels.Requirement.String() renders it.
_SELECTOR_OPERATORS = {"In": " in ", "NotIn": " notin ", "Exists": "", "DoesNotExist": "!"}


def _selector_string(selector: Any) -> str | None:
    """``metav1.LabelSelectorAsSelector(selector).String()``; None if the selector is invalid.

    Requirements are sorted by key (matchLabels before matchExpressions for the same key, as
    upstream's insertion sort keeps them); ``in``/``notin`` values are sorted inside parens.
    A nil selector selects nothing and an empty one everything: both render as "".
    """
    if selector is None:
        return ""
    if not isinstance(selector, dict):
        return None
    match_labels = _dict(selector.get("matchLabels"))
    requirements: list[tuple[str, str]] = []
    for key in sorted(match_labels):
        value = match_labels[key]
        if not isinstance(value, str) or not _valid_label_key(key):
            return None
        if not _valid_label_value(value):
            return None
        requirements.append((key, f"{key}={value}"))
    for expression in _list(selector.get("matchExpressions")):
        if not isinstance(expression, dict):
            return None
        key, operator = _str(expression.get("key")), expression.get("operator")
        values = [v for v in _list(expression.get("values")) if isinstance(v, str)]
        if operator not in _SELECTOR_OPERATORS or not _valid_label_key(key):
            return None
        if any(not _valid_label_value(v) for v in values):
            return None
        if operator in ("In", "NotIn"):
            if not values:
                return None
            text = f"{key}{_SELECTOR_OPERATORS[operator]}({','.join(sorted(values))})"
        else:
            if values:
                return None
            text = f"{_SELECTOR_OPERATORS[operator]}{key}"
        requirements.append((key, text))
    requirements.sort(key=lambda requirement: requirement[0])
    return ",".join(text for _, text in requirements)


def format_label_selector(selector: Any) -> str:
    """``metav1.FormatLabelSelector``: ``app=x``, ``tier in (a,b)``, ``!key``; ``<none>``."""
    text = _selector_string(selector)
    if text is None:
        return "<error>"
    return text or "<none>"


# ---------------------------------------------------------------------------------------------
# Quantities: resource.Quantity.String(), the canonical form the API server stores.
# ---------------------------------------------------------------------------------------------

_BINARY_SUFFIXES = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_DECIMAL_SUFFIXES = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12}
_DECIMAL_SUFFIXES |= {"P": 15, "E": 18}
_DECIMAL_BY_EXPONENT = {exponent: suffix for suffix, exponent in _DECIMAL_SUFFIXES.items()}
_BINARY_BY_EXPONENT = {exponent // 10: suffix for suffix, exponent in _BINARY_SUFFIXES.items()}
_QUANTITY = re.compile(r"^([+-]?)(\d+\.?\d*|\.\d+)(.*)$")
_NANO = 10**9


def _parse_quantity(text: str) -> tuple[Fraction, str] | None:
    """A quantity's exact value and format (BinarySI, DecimalSI or DecimalExponent)."""
    match = _QUANTITY.match(text)
    if match is None:
        return None
    sign, digits, suffix = match.groups()
    if suffix in _BINARY_SUFFIXES:
        value, fmt = Fraction(digits) * 2 ** _BINARY_SUFFIXES[suffix], "BinarySI"
    elif suffix in _DECIMAL_SUFFIXES:
        value, fmt = Fraction(digits) * Fraction(10) ** _DECIMAL_SUFFIXES[suffix], "DecimalSI"
    elif len(suffix) > 1 and suffix[0] in "eE" and re.fullmatch(r"[+-]?\d+", suffix[1:]):
        value, fmt = Fraction(digits) * Fraction(10) ** int(suffix[1:]), "DecimalExponent"
    else:
        return None
    # Quantities keep nano precision at most; finer values are rounded away from zero.
    scaled = value * _NANO
    whole = scaled.numerator // scaled.denominator
    if whole != scaled:
        whole += 1
    value = Fraction(whole, _NANO)
    return (-value if sign == "-" else value), fmt


def format_quantity(value: Any) -> str:
    """A quantity in canonical form: ``1536Mi`` for ``1.5Gi``, ``1500m`` for ``1.5``, ``2k``.

    Binary quantities stay binary when they are whole and at least 1Ki; everything else is
    written as an integer mantissa with an SI suffix whose exponent is a multiple of three.
    Something that is not a quantity is printed as stored.
    """
    if value is None or isinstance(value, bool):
        return "0"
    text = str(value).strip()
    parsed = _parse_quantity(text)
    if parsed is None:
        return text
    amount, fmt = parsed
    if amount == 0:
        return "0"
    if fmt == "BinarySI" and (-1024 < amount < 1024 or amount.denominator != 1):
        # Small or fractional binary values would need rounding: show them in decimal.
        fmt = "DecimalSI"
    if fmt == "BinarySI":
        mantissa, exponent = amount.numerator, 0
        while mantissa % 1024 == 0 and exponent < 6:
            mantissa, exponent = mantissa // 1024, exponent + 1
        return f"{mantissa}{_BINARY_BY_EXPONENT.get(exponent, '')}"
    scale = 0
    while (amount * 10**scale).denominator != 1:
        scale += 1
    mantissa, exponent = int(amount * 10**scale), -scale
    while mantissa % 10 == 0:
        mantissa, exponent = mantissa // 10, exponent + 1
    # Python's % keeps the remainder non-negative, so this lowers the exponent to a multiple
    # of three for negative exponents too (-1 -> -3, -2 -> -3).
    shift = exponent % 3
    mantissa, exponent = mantissa * 10**shift, exponent - shift
    if fmt == "DecimalSI" and exponent in _DECIMAL_BY_EXPONENT:
        return f"{mantissa}{_DECIMAL_BY_EXPONENT[exponent]}"
    return f"{mantissa}" if exponent == 0 else f"{mantissa}e{exponent}"


# ---------------------------------------------------------------------------------------------
# Shared cell builders.
# ---------------------------------------------------------------------------------------------


def _containers_of(pod_spec: Any) -> list[dict[str, Any]]:
    return _dicts(_dig(pod_spec, "containers"))


def _container_names(pod_spec: Any) -> str:
    return ",".join(_str(c.get("name")) for c in _containers_of(pod_spec))


def _container_images(pod_spec: Any) -> str:
    return ",".join(_str(c.get("image")) for c in _containers_of(pod_spec))


def _desired_replicas(obj: Obj) -> int:
    replicas = _opt_int(_dig(obj, "spec", "replicas"))
    return 1 if replicas is None else replicas  # spec.replicas defaults to 1


def _template_spec(obj: Obj) -> Any:
    return _dig(obj, "spec", "template", "spec")


# Access modes as abbreviated by helper.GetAccessModesAsString, in that fixed order.
_ACCESS_MODES = (
    ("ReadWriteOnce", "RWO"),
    ("ReadOnlyMany", "ROX"),
    ("ReadWriteMany", "RWX"),
    ("ReadWriteOncePod", "RWOP"),
)


def _access_modes(modes: Any) -> str:
    present = {mode for mode in _list(modes) if isinstance(mode, str)}
    return ",".join(short for mode, short in _ACCESS_MODES if mode in present)


def _condition_true(conditions: Any, condition_type: str) -> bool:
    """Whether the first condition of that type has status True (upstream's lookups)."""
    for condition in _dicts(conditions):
        if condition.get("type") == condition_type:
            return condition.get("status") == "True"
    return False


def _int_or_string(value: Any) -> str:
    """intstr.IntOrString.String(): ``1``, ``25%``."""
    if isinstance(value, bool):
        return ""
    if isinstance(value, int | str):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return ""


def _load_balancer_ingress(ingress: Any) -> str:
    """Sorted, de-duplicated IPs (or hostnames) of load-balancer ingress points.

    Upstream clips this to 16 characters for narrow output, but its table convertor always
    prints wide, so tables carry the full list.
    """
    points = set()
    for point in _dicts(ingress):
        if _str(point.get("ip")):
            points.add(point["ip"])
        elif _str(point.get("hostname")):
            points.add(point["hostname"])
    return ",".join(sorted(points))


def _more(items: list[str], count: int, limit: int = 3) -> str:
    """Join the first ``limit`` items, noting how many more there were."""
    text = ",".join(items[:limit])
    if count > limit:
        return f"{text} + {count - limit} more..."
    return text


# ---------------------------------------------------------------------------------------------
# Column descriptions, as upstream's Tables carry them (taken from the API field docs; long
# ones shortened to their first sentences).
# ---------------------------------------------------------------------------------------------

D_NAME = (
    "Name must be unique within a namespace. Is required when creating resources, although "
    "some resources may allow a client to request the generation of an appropriate name "
    "automatically. Name is primarily intended for creation idempotence and configuration "
    "definition. Cannot be updated."
)
D_AGE = (
    "CreationTimestamp is a timestamp representing the server time when this object was "
    "created. It is not guaranteed to be set in happens-before order across separate "
    "operations. Clients may not set this value. It is represented in RFC3339 form and is in "
    "UTC."
)
D_CONTAINERS = "Names of each container in the template."
D_IMAGES = "Images referenced by each container in the template."
D_SELECTOR = (
    "A label query over pods that should match the pod count. Label keys and values that must "
    "match in order to be controlled by this object."
)
D_DESIRED_REPLICAS = "Replicas is the number of desired replicas. Defaults to 1."
D_CURRENT_REPLICAS = "Replicas is the most recently observed number of replicas."
D_READY_REPLICAS = "The number of ready replicas for this controller."
D_READY_OF = "Number of the pod with ready state"


def _name_column(cell: Callable[[Obj], Any] = _name, priority: int = 0) -> Column:
    return Column("Name", cell, format="name", description=D_NAME, priority=priority)


AGE = Column("Age", _age, description=D_AGE)


def _wide(column: Column) -> Column:
    """The same column shown only with ``-o wide``."""
    return replace(column, priority=1)


def _template_columns(selector: Callable[[Obj], Any] | None) -> tuple[Column, ...]:
    """The wide Containers / Images (/ Selector) columns of the workload kinds."""
    columns = [
        Column(
            "Containers", lambda o: _container_names(_template_spec(o)), description=D_CONTAINERS
        ),
        Column("Images", lambda o: _container_images(_template_spec(o)), description=D_IMAGES),
    ]
    if selector is not None:
        columns.append(Column("Selector", selector, description=D_SELECTOR))
    return tuple(_wide(column) for column in columns)


DEFAULT_COLUMNS: tuple[Column, ...] = (
    _name_column(),
    Column("Created At", _created_at, type="date", description=D_AGE),
)


# ---------------------------------------------------------------------------------------------
# Pod: the Ready / Status / Restarts summary of kubectl's printPod.
# ---------------------------------------------------------------------------------------------

_TERMINAL_PHASES = ("Succeeded", "Failed")


def _later(current: datetime | None, candidate: Any) -> datetime | None:
    moment = _parse_time(candidate)
    if moment is None or (current is not None and moment <= current):
        return current
    return moment


def _pod_summary(pod: Obj) -> tuple[str, str, str]:
    """``_pod_summary_of`` once per row: three columns read it (``_cells`` clears the memo)."""
    memo = _row_memo.__dict__
    if memo.get("pod") is not pod:
        memo["pod"], memo["summary"] = pod, _pod_summary_of(pod)
    summary: tuple[str, str, str] = memo["summary"]
    return summary


def _pod_summary_of(pod: Obj) -> tuple[str, str, str]:
    """The pod's (Ready, Status, Restarts) cells, following upstream's printPod rules.

    Status starts from the phase (or ``status.reason``), is overridden by the first init
    container that has not finished (``Init:1/2``, ``Init:CrashLoopBackOff``,
    ``Init:ExitCode:1``), otherwise by the waiting/terminated reason of the app containers
    (``CrashLoopBackOff``, ``Completed``, ``ExitCode:1``), and finally by deletion
    (``Terminating``; ``Unknown`` for pods lost with their node). Ready counts ready running
    containers, sidecars (restartable init containers) included.
    """
    spec, status = _spec(pod), _status(pod)
    containers = _dicts(spec.get("containers"))
    init_containers = _dicts(spec.get("initContainers"))
    conditions = status.get("conditions")

    # A created pod always has a phase upstream (the pod strategy sets Pending).
    phase = _str(status.get("phase")) or "Pending"
    reason = _str(status.get("reason")) or phase
    for condition in _dicts(conditions):
        if condition.get("type") == "PodScheduled" and condition.get("reason") == (
            "SchedulingGated"
        ):
            reason = "SchedulingGated"

    sidecars = {_str(c.get("name")) for c in init_containers if c.get("restartPolicy") == "Always"}
    total = len(containers) + sum(1 for c in init_containers if c.get("restartPolicy") == "Always")
    ready = 0
    restarts = 0
    sidecar_restarts = 0
    last_restart: datetime | None = None
    last_sidecar_restart: datetime | None = None

    initializing = False
    for index, container in enumerate(_dicts(status.get("initContainerStatuses"))):
        count = _int(container.get("restartCount"))
        finished = _dig(container, "lastState", "terminated", "finishedAt")
        restarts += count
        last_restart = _later(last_restart, finished)
        is_sidecar = _str(container.get("name")) in sidecars
        if is_sidecar:
            sidecar_restarts += count
            last_sidecar_restart = _later(last_sidecar_restart, finished)
        terminated = _dig(container, "state", "terminated")
        waiting = _dig(container, "state", "waiting")
        if isinstance(terminated, dict) and _int(terminated.get("exitCode")) == 0:
            continue
        if is_sidecar and container.get("started") is True:
            if container.get("ready") is True:
                ready += 1
            continue
        if isinstance(terminated, dict):
            # Initialization failed.
            if _str(terminated.get("reason")):
                reason = "Init:" + terminated["reason"]
            elif _int(terminated.get("signal")):
                reason = f"Init:Signal:{_int(terminated.get('signal'))}"
            else:
                reason = f"Init:ExitCode:{_int(terminated.get('exitCode'))}"
        elif isinstance(waiting, dict) and _str(waiting.get("reason")) not in (
            "",
            "PodInitializing",
        ):
            reason = "Init:" + waiting["reason"]
        else:
            reason = f"Init:{index}/{len(init_containers)}"
        initializing = True
        break

    if not initializing or _condition_true(conditions, "Initialized"):
        # Once initialized, restarts of completed init containers no longer count.
        restarts, last_restart = sidecar_restarts, last_sidecar_restart
        has_running = False
        for container in reversed(_dicts(status.get("containerStatuses"))):
            restarts += _int(container.get("restartCount"))
            last_restart = _later(
                last_restart, _dig(container, "lastState", "terminated", "finishedAt")
            )
            waiting = _dig(container, "state", "waiting")
            terminated = _dig(container, "state", "terminated")
            if isinstance(waiting, dict) and _str(waiting.get("reason")):
                reason = waiting["reason"]
            elif isinstance(terminated, dict) and _str(terminated.get("reason")):
                reason = terminated["reason"]
            elif isinstance(terminated, dict):
                signal = _int(terminated.get("signal"))
                exit_code = _int(terminated.get("exitCode"))
                reason = f"Signal:{signal}" if signal else f"ExitCode:{exit_code}"
            elif container.get("ready") is True and _dig(container, "state", "running") is not None:
                has_running = True
                ready += 1
        # A container that completed while another still runs: the pod is not "Completed".
        if reason == "Completed" and has_running:
            reason = "Running" if _condition_true(conditions, "Ready") else "NotReady"

    if _deleting(pod) and status.get("reason") == "NodeLost":
        reason = "Unknown"
    elif _deleting(pod) and phase not in _TERMINAL_PHASES:
        reason = "Terminating"

    restarts_cell = str(restarts)
    if restarts != 0 and last_restart is not None:
        restarts_cell = _ago(last_restart, f"{restarts} ({{}} ago)")
    return f"{ready}/{total}", reason, restarts_cell


def _pod_ip(pod: Obj) -> str:
    ips = _dicts(_dig(pod, "status", "podIPs"))
    ip = _str(ips[0].get("ip")) if ips else ""
    # Older writers only set the singular field; upstream's conversion derives podIPs from it.
    return ip or _str(_dig(pod, "status", "podIP")) or "<none>"


def _readiness_gates(pod: Obj) -> str:
    gates = _dicts(_dig(pod, "spec", "readinessGates"))
    if not gates:
        return "<none>"
    conditions = _dicts(_dig(pod, "status", "conditions"))
    true = 0
    for gate in gates:
        for condition in conditions:
            if condition.get("type") == gate.get("conditionType"):
                true += condition.get("status") == "True"
                break
    return f"{true}/{len(gates)}"


POD_COLUMNS: tuple[Column, ...] = (
    _name_column(),
    Column(
        "Ready",
        lambda o: _pod_summary(o)[0],
        description="The aggregate readiness state of this pod for accepting traffic.",
    ),
    Column(
        "Status",
        lambda o: _pod_summary(o)[1],
        description="The aggregate status of the containers in this pod.",
    ),
    Column(
        "Restarts",
        lambda o: _pod_summary(o)[2],
        description=(
            "The number of times the containers in this pod have been restarted and when the "
            "last container in this pod has restarted."
        ),
    ),
    AGE,
    Column(
        "IP",
        _pod_ip,
        priority=1,
        description="podIP address allocated to the pod. Routable at least within the cluster.",
    ),
    Column(
        "Node",
        lambda o: _str(_dig(o, "spec", "nodeName")) or "<none>",
        priority=1,
        description="NodeName indicates in which node this pod is scheduled.",
    ),
    Column(
        "Nominated Node",
        lambda o: _str(_dig(o, "status", "nominatedNodeName")) or "<none>",
        priority=1,
        description=(
            "nominatedNodeName is set only when this pod preempts other pods on the node, but "
            "it cannot be scheduled right away as preemption victims receive their graceful "
            "termination periods."
        ),
    ),
    Column(
        "Readiness Gates",
        _readiness_gates,
        priority=1,
        description=(
            "If specified, all readiness gates will be evaluated for pod readiness. A pod is "
            "ready when all its containers are ready AND all conditions specified in the "
            'readiness gates have status equal to "True"'
        ),
    ),
)


# ---------------------------------------------------------------------------------------------
# Core kinds.
# ---------------------------------------------------------------------------------------------

NAMESPACE_COLUMNS: tuple[Column, ...] = (
    _name_column(),
    # Upstream defaults an unset namespace phase to Active.
    Column(
        "Status",
        lambda o: _str(_dig(o, "status", "phase")) or "Active",
        description="The status of the namespace",
    ),
    AGE,
)


def _node_status(node: Obj) -> str:
    """``Ready``/``NotReady``/``Unknown`` from the Ready condition, plus SchedulingDisabled."""
    ready: dict[str, Any] | None = None
    for condition in _dicts(_dig(node, "status", "conditions")):
        if condition.get("type") == "Ready":
            ready = condition  # upstream keeps the last one of a type
    states = []
    if ready is not None:
        states.append("Ready" if ready.get("status") == "True" else "NotReady")
    else:
        states.append("Unknown")
    if _dig(node, "spec", "unschedulable") is True:
        states.append("SchedulingDisabled")
    return ",".join(states)


def _node_roles(node: Obj) -> str:
    """Roles from ``node-role.kubernetes.io/<role>`` keys and ``kubernetes.io/role`` values."""
    roles = set()
    for key, value in _dict(_dig(node, "metadata", "labels")).items():
        if key.startswith("node-role.kubernetes.io/"):
            role = key.removeprefix("node-role.kubernetes.io/")
            if role:
                roles.add(role)
        elif key == "kubernetes.io/role" and _str(value):
            roles.add(value)
    return ",".join(sorted(roles)) or "<none>"


def _node_address(address_type: str) -> Callable[[Obj], str]:
    def cell(node: Obj) -> str:
        for address in _dicts(_dig(node, "status", "addresses")):
            if address.get("type") == address_type:
                return _str(address.get("address"))
        return "<none>"

    return cell


def _node_info(field: str) -> Callable[[Obj], str]:
    return lambda node: _str(_dig(node, "status", "nodeInfo", field)) or "<unknown>"


D_NODE_ADDRESSES = (
    "List of addresses reachable to the node. Queried from cloud provider, if available."
)

NODE_COLUMNS: tuple[Column, ...] = (
    _name_column(),
    Column("Status", _node_status, description="The status of the node"),
    Column("Roles", _node_roles, description="The roles of the node"),
    AGE,
    Column(
        "Version",
        lambda o: _str(_dig(o, "status", "nodeInfo", "kubeletVersion")),
        description="Kubelet Version reported by the node.",
    ),
    Column("Internal-IP", _node_address("InternalIP"), priority=1, description=D_NODE_ADDRESSES),
    Column("External-IP", _node_address("ExternalIP"), priority=1, description=D_NODE_ADDRESSES),
    Column(
        "OS-Image",
        _node_info("osImage"),
        priority=1,
        description="OS Image reported by the node from /etc/os-release.",
    ),
    Column(
        "Kernel-Version",
        _node_info("kernelVersion"),
        priority=1,
        description="Kernel Version reported by the node from 'uname -r'.",
    ),
    Column(
        "Container-Runtime",
        _node_info("containerRuntimeVersion"),
        priority=1,
        description="ContainerRuntime Version reported by the node through runtime remote API.",
    ),
)

REPLICATION_CONTROLLER_COLUMNS: tuple[Column, ...] = (
    _name_column(),
    Column(
        "Desired",
        _desired_replicas,
        type="integer",
        description=D_DESIRED_REPLICAS,
    ),
    Column(
        "Current",
        lambda o: _int(_dig(o, "status", "replicas")),
        type="integer",
        description=D_CURRENT_REPLICAS,
    ),
    Column(
        "Ready",
        lambda o: _int(_dig(o, "status", "readyReplicas")),
        type="integer",
        description=D_READY_REPLICAS,
    ),
    AGE,
    # An RC's selector is a plain label map.
    *_template_columns(lambda o: format_labels(_dig(o, "spec", "selector"))),
)


def _service_type(service: Obj) -> str:
    # Upstream defaults spec.type to ClusterIP.
    return _str(_dig(service, "spec", "type")) or "ClusterIP"


def _service_cluster_ip(service: Obj) -> str:
    ips = [ip for ip in _list(_dig(service, "spec", "clusterIPs")) if isinstance(ip, str)]
    if ips:
        return ips[0]
    # clusterIPs is derived from clusterIP upstream; honour objects that only carry the latter.
    return _str(_dig(service, "spec", "clusterIP")) or "<none>"


def _service_external_ip(service: Obj) -> str:
    spec = _spec(service)
    external_ips = [ip for ip in _list(spec.get("externalIPs")) if isinstance(ip, str)]
    service_type = _service_type(service)
    if service_type in ("ClusterIP", "NodePort"):
        return ",".join(external_ips) or "<none>"
    if service_type == "LoadBalancer":
        balancers = _load_balancer_ingress(_dig(service, "status", "loadBalancer", "ingress"))
        if external_ips:
            return ",".join([*([balancers] if balancers else []), *external_ips])
        return balancers or "<pending>"
    if service_type == "ExternalName":
        return _str(spec.get("externalName"))
    return "<unknown>"


def _service_ports(service: Obj) -> str:
    pieces = []
    for port in _dicts(_dig(service, "spec", "ports")):
        protocol = _str(port.get("protocol")) or "TCP"  # the defaulted protocol
        node_port = _int(port.get("nodePort"))
        if node_port > 0:
            pieces.append(f"{_int(port.get('port'))}:{node_port}/{protocol}")
        else:
            pieces.append(f"{_int(port.get('port'))}/{protocol}")
    return ",".join(pieces) or "<none>"


SERVICE_COLUMNS: tuple[Column, ...] = (
    _name_column(),
    Column(
        "Type",
        _service_type,
        description=(
            "type determines how the Service is exposed. Defaults to ClusterIP. Valid options "
            "are ExternalName, ClusterIP, NodePort, and LoadBalancer."
        ),
    ),
    Column(
        "Cluster-IP",
        _service_cluster_ip,
        description=(
            "clusterIP is the IP address of the service and is usually assigned randomly."
        ),
    ),
    Column(
        "External-IP",
        _service_external_ip,
        description=(
            "externalIPs is a list of IP addresses for which nodes in the cluster will also "
            "accept traffic for this service."
        ),
    ),
    Column(
        "Port(s)",
        _service_ports,
        description="The list of ports that are exposed by this service.",
    ),
    AGE,
    Column(
        "Selector",
        lambda o: format_labels(_dig(o, "spec", "selector")),
        priority=1,
        description=(
            "Route service traffic to pods with label keys and values matching this selector."
        ),
    ),
)


def _endpoints(endpoints: Obj) -> str:
    """``10.0.0.1:80,10.0.0.2:80,10.0.0.3:80 + 2 more...`` over all subsets and ports."""
    subsets = _dicts(_dig(endpoints, "subsets"))
    if not subsets:
        return "<none>"
    listed: list[str] = []
    count = 0
    for subset in subsets:
        addresses = [_str(a.get("ip")) for a in _dicts(subset.get("addresses"))]
        ports = _dicts(subset.get("ports"))
        if not ports:
            # Headless services may publish addresses without ports.
            count += len(addresses)
            listed.extend(addresses)
            continue
        for port in ports:
            count += len(addresses)
            number = _int(port.get("port"))
            listed.extend(f"[{ip}]:{number}" if ":" in ip else f"{ip}:{number}" for ip in addresses)
    return _more(listed, count)


ENDPOINTS_COLUMNS: tuple[Column, ...] = (
    _name_column(),
    Column(
        "Endpoints",
        _endpoints,
        description=(
            "The set of all endpoints is the union of all subsets. Addresses are placed into "
            "subsets according to the IPs they share."
        ),
    ),
    AGE,
)

CONFIG_MAP_COLUMNS: tuple[Column, ...] = (
    _name_column(),
    Column(
        "Data",
        lambda o: len(_dict(o.get("data"))) + len(_dict(o.get("binaryData"))),
        description="Data contains the configuration data.",
    ),
    AGE,
)


def _secret_data(secret: Obj) -> int:
    # The API server folds stringData into data on write; count it in case it was stored.
    return len(set(_dict(secret.get("data"))) | set(_dict(secret.get("stringData"))))


SECRET_COLUMNS: tuple[Column, ...] = (
    _name_column(),
    Column(
        "Type",
        # Upstream defaults an unset secret type to Opaque.
        lambda o: _str(o.get("type")) or "Opaque",
        description="Used to facilitate programmatic handling of secret data.",
    ),
    Column("Data", _secret_data, description="Data contains the secret data."),
    AGE,
)

SERVICE_ACCOUNT_COLUMNS: tuple[Column, ...] = (
    _name_column(),
    Column(
        "Secrets",
        lambda o: len(_list(o.get("secrets"))),
        description=(
            "Secrets is a list of the secrets in the same namespace that pods running using "
            "this ServiceAccount are allowed to use."
        ),
    ),
    AGE,
)


def _event_first_seen(event: Obj) -> str:
    if _parse_time(event.get("firstTimestamp")) is not None:
        return _since(event.get("firstTimestamp"))
    return _since(event.get("eventTime"))


def _event_last_seen(event: Obj) -> str:
    series = event.get("series")
    if isinstance(series, dict):
        return _since(series.get("lastObservedTime"))
    if _parse_time(event.get("lastTimestamp")) is not None:
        return _since(event.get("lastTimestamp"))
    return _event_first_seen(event)


def _event_count(event: Obj) -> int:
    series = event.get("series")
    if isinstance(series, dict):
        return _int(series.get("count"))
    # Singleton events of the events.k8s.io API carry no count.
    return _int(event.get("count")) or 1


def _event_object(event: Obj) -> str:
    kind = _str(_dig(event, "involvedObject", "kind")).lower()
    name = _str(_dig(event, "involvedObject", "name"))
    return f"{kind}/{name}" if name else kind


def _event_source(event: Obj) -> str:
    """``component, host`` falling back to the reporting controller / instance."""
    component = _str(_dig(event, "source", "component")) or _str(event.get("reportingComponent"))
    instance = _str(_dig(event, "source", "host")) or _str(event.get("reportingInstance"))
    return f"{component}, {instance}" if instance else component


EVENT_COLUMNS: tuple[Column, ...] = (
    Column(
        "Last Seen",
        _event_last_seen,
        description="The time at which the most recent occurrence of this event was recorded.",
    ),
    Column(
        "Type",
        lambda o: _str(o.get("type")),
        description="Type of this event (Normal, Warning), new types could be added in the future",
    ),
    Column(
        "Reason",
        lambda o: _str(o.get("reason")),
        description=(
            "This should be a short, machine understandable string that gives the reason for "
            "the transition into the object's current status."
        ),
    ),
    Column("Object", _event_object, description="The object that this event is about."),
    Column(
        "Subobject",
        lambda o: _str(_dig(o, "involvedObject", "fieldPath")),
        priority=1,
        description=(
            "If referring to a piece of an object instead of an entire object, this string "
            "should contain a valid JSON/Go field access statement, such as "
            "desiredState.manifest.containers[2]."
        ),
    ),
    Column(
        "Source",
        _event_source,
        priority=1,
        description=(
            "The component reporting this event. Should be a short machine understandable string."
        ),
    ),
    Column(
        "Message",
        lambda o: _str(o.get("message")).strip(),
        description="A human-readable description of the status of this operation.",
    ),
    Column(
        "First Seen",
        _event_first_seen,
        priority=1,
        description="The time at which the event was first recorded.",
    ),
    Column(
        "Count",
        _event_count,
        priority=1,
        description="The number of times this event has occurred.",
    ),
    _name_column(priority=1),
)


def _storage_class_of(obj: Obj) -> str:
    """helper.GetPersistentVolume(Claim)Class: the beta annotation wins over the field."""
    annotations = _dict(_dig(obj, "metadata", "annotations"))
    if "volume.beta.kubernetes.io/storage-class" in annotations:
        return _str(annotations["volume.beta.kubernetes.io/storage-class"])
    return _str(_dig(obj, "spec", "storageClassName"))


def _claim_ref(volume: Obj) -> str:
    claim = _dig(volume, "spec", "claimRef")
    if not isinstance(claim, dict):
        return ""
    return f"{_str(claim.get('namespace'))}/{_str(claim.get('name'))}"


def _volume_phase(obj: Obj) -> str:
    if _deleting(obj):
        return "Terminating"
    # Upstream defaults an unset PV/PVC phase to Pending.
    return _str(_dig(obj, "status", "phase")) or "Pending"


def _volume_mode(obj: Obj) -> str:
    # Upstream defaults volumeMode to Filesystem on PVs and PVCs.
    return _str(_dig(obj, "spec", "volumeMode")) or "Filesystem"


def _volume_attributes_class(obj: Obj) -> str:
    value = _dig(obj, "spec", "volumeAttributesClassName")
    return value if isinstance(value, str) else "<unset>"


PERSISTENT_VOLUME_COLUMNS: tuple[Column, ...] = (
    _name_column(),
    Column(
        "Capacity",
        lambda o: format_quantity(_dig(o, "spec", "capacity", "storage")),
        description=(
            "capacity is the description of the persistent volume's resources and capacity."
        ),
    ),
    Column(
        "Access Modes",
        lambda o: _access_modes(_dig(o, "spec", "accessModes")),
        description="accessModes contains all ways the volume can be mounted.",
    ),
    Column(
        "Reclaim Policy",
        # Upstream defaults the reclaim policy of a PV to Retain.
        lambda o: _str(_dig(o, "spec", "persistentVolumeReclaimPolicy")) or "Retain",
        description=(
            "persistentVolumeReclaimPolicy defines what happens to a persistent volume when "
            "released from its claim."
        ),
    ),
    Column(
        "Status",
        _volume_phase,
        description=(
            "phase indicates if a volume is available, bound to a claim, or released by a claim."
        ),
    ),
    Column(
        "Claim",
        _claim_ref,
        description=(
            "claimRef is part of a bi-directional binding between PersistentVolume and "
            "PersistentVolumeClaim."
        ),
    ),
    Column("StorageClass", _storage_class_of, description="StorageClass of the pv"),
    Column(
        "VolumeAttributesClass",
        _volume_attributes_class,
        description="VolumeAttributesClass of the pv",
    ),
    Column(
        "Reason",
        lambda o: _str(_dig(o, "status", "reason")),
        description=(
            "reason is a brief CamelCase string that describes any failure and is meant for "
            "machine parsing and tidy display in the CLI."
        ),
    ),
    AGE,
    Column(
        "VolumeMode",
        _volume_mode,
        priority=1,
        description=(
            "volumeMode defines if a volume is intended to be used with a formatted filesystem "
            "or to remain in raw block state."
        ),
    ),
)


def _claim_bound(claim: Obj) -> bool:
    return bool(_str(_dig(claim, "spec", "volumeName")))


PERSISTENT_VOLUME_CLAIM_COLUMNS: tuple[Column, ...] = (
    _name_column(),
    Column(
        "Status",
        _volume_phase,
        description="phase represents the current phase of PersistentVolumeClaim.",
    ),
    Column(
        "Volume",
        lambda o: _str(_dig(o, "spec", "volumeName")),
        description=(
            "volumeName is the binding reference to the PersistentVolume backing this claim."
        ),
    ),
    # Capacity and access modes are the bound volume's: blank until the claim is bound.
    Column(
        "Capacity",
        lambda o: (
            format_quantity(_dig(o, "status", "capacity", "storage")) if _claim_bound(o) else ""
        ),
        description="capacity represents the actual resources of the underlying volume.",
    ),
    Column(
        "Access Modes",
        lambda o: _access_modes(_dig(o, "status", "accessModes")) if _claim_bound(o) else "",
        description=(
            "accessModes contains the actual access modes the volume backing the PVC has."
        ),
    ),
    Column("StorageClass", _storage_class_of, description="StorageClass of the pvc"),
    Column(
        "VolumeAttributesClass",
        _volume_attributes_class,
        description="VolumeAttributesClass of the pvc",
    ),
    AGE,
    Column(
        "VolumeMode",
        _volume_mode,
        priority=1,
        description="volumeMode defines what type of volume is required by the claim.",
    ),
)


def _quota_column(limits: bool) -> Callable[[Obj], str]:
    """``resource: used/hard`` for each hard limit, sorted; ``limits.*`` go to Limit."""

    def cell(quota: Obj) -> str:
        hard = _dict(_dig(quota, "status", "hard"))
        used = _dict(_dig(quota, "status", "used"))
        pieces = []
        for resource in sorted(hard):
            parts = resource.split(".")
            if (len(parts) > 1 and parts[0] == "limits") != limits:
                continue
            used_text = format_quantity(used.get(resource))
            pieces.append(f"{resource}: {used_text}/{format_quantity(hard[resource])}")
        return ", ".join(pieces)

    return cell


RESOURCE_QUOTA_COLUMNS: tuple[Column, ...] = (
    _name_column(),
    Column(
        "Request",
        _quota_column(limits=False),
        description=(
            "Request represents a minimum amount of cpu/memory that a container may consume."
        ),
    ),
    Column(
        "Limit",
        _quota_column(limits=True),
        description=(
            "Limits control the maximum amount of cpu/memory that a container may use "
            "independent of contention on the node."
        ),
    ),
    AGE,
)


# ---------------------------------------------------------------------------------------------
# apps/v1.
# ---------------------------------------------------------------------------------------------


def _deployment_selector(deployment: Obj) -> str:
    # Deployments print the raw selector string: "" rather than <none>, <invalid> on error.
    text = _selector_string(_dig(deployment, "spec", "selector"))
    return "<invalid>" if text is None else text


DEPLOYMENT_COLUMNS: tuple[Column, ...] = (
    _name_column(),
    Column(
        "Ready",
        lambda o: f"{_int(_dig(o, 'status', 'readyReplicas'))}/{_desired_replicas(o)}",
        description=D_READY_OF,
    ),
    Column(
        "Up-to-date",
        lambda o: _int(_dig(o, "status", "updatedReplicas")),
        description=(
            "Total number of non-terminating pods targeted by this deployment that have the "
            "desired template spec."
        ),
    ),
    Column(
        "Available",
        lambda o: _int(_dig(o, "status", "availableReplicas")),
        description=(
            "Total number of available non-terminating pods (ready for at least "
            "minReadySeconds) targeted by this deployment."
        ),
    ),
    AGE,
    *_template_columns(_deployment_selector),
)


def _spec_selector(obj: Obj) -> str:
    return format_label_selector(_dig(obj, "spec", "selector"))


REPLICA_SET_COLUMNS: tuple[Column, ...] = (
    _name_column(),
    Column("Desired", _desired_replicas, type="integer", description=D_DESIRED_REPLICAS),
    Column(
        "Current",
        lambda o: _int(_dig(o, "status", "replicas")),
        type="integer",
        description=D_CURRENT_REPLICAS,
    ),
    Column(
        "Ready",
        lambda o: _int(_dig(o, "status", "readyReplicas")),
        type="integer",
        description=D_READY_REPLICAS,
    ),
    AGE,
    *_template_columns(_spec_selector),
)

STATEFUL_SET_COLUMNS: tuple[Column, ...] = (
    _name_column(),
    Column(
        "Ready",
        lambda o: f"{_int(_dig(o, 'status', 'readyReplicas'))}/{_desired_replicas(o)}",
        description=D_READY_OF,
    ),
    AGE,
    *_template_columns(None),
)


def _daemon_status(field: str) -> Callable[[Obj], int]:
    return lambda o: _int(_dig(o, "status", field))


DAEMON_SET_COLUMNS: tuple[Column, ...] = (
    _name_column(),
    Column(
        "Desired",
        _daemon_status("desiredNumberScheduled"),
        type="integer",
        description="The total number of nodes that should be running the daemon pod.",
    ),
    Column(
        "Current",
        _daemon_status("currentNumberScheduled"),
        type="integer",
        description=(
            "The number of nodes that are running at least 1 daemon pod and are supposed to "
            "run the daemon pod."
        ),
    ),
    Column(
        "Ready",
        _daemon_status("numberReady"),
        type="integer",
        description=(
            "numberReady is the number of nodes that should be running the daemon pod and have "
            "one or more of the daemon pod running with a Ready Condition."
        ),
    ),
    Column(
        "Up-to-date",
        _daemon_status("updatedNumberScheduled"),
        type="integer",
        description="The total number of nodes that are running updated daemon pod",
    ),
    Column(
        "Available",
        _daemon_status("numberAvailable"),
        type="integer",
        description=(
            "The number of nodes that should be running the daemon pod and have one or more of "
            "the daemon pod running and available (ready for at least spec.minReadySeconds)"
        ),
    ),
    Column(
        "Node Selector",
        lambda o: format_labels(_dig(_template_spec(o), "nodeSelector")),
        description=("NodeSelector is a selector which must be true for the pod to fit on a node."),
    ),
    AGE,
    *_template_columns(_spec_selector),
)


def _controller_of(obj: Obj) -> str:
    """The controlling owner as ``kind.group/name`` (``daemonset.apps/fluentd``)."""
    for owner in _dicts(_dig(obj, "metadata", "ownerReferences")):
        if owner.get("controller") is not True:
            continue
        api_version = _str(owner.get("apiVersion"))
        group = api_version.split("/", 1)[0] if "/" in api_version else ""
        kind = _str(owner.get("kind"))
        group_kind = f"{kind}.{group}" if group else kind
        name = _str(owner.get("name"))
        return f"{group_kind.lower()}/{name}" if group_kind else name
    return "<none>"


CONTROLLER_REVISION_COLUMNS: tuple[Column, ...] = (
    _name_column(),
    Column("Controller", _controller_of, description="Controller of the object"),
    Column(
        "Revision",
        lambda o: _int(o.get("revision")),
        description="Revision indicates the revision of the state represented by Data.",
    ),
    AGE,
)


# ---------------------------------------------------------------------------------------------
# batch/v1.
# ---------------------------------------------------------------------------------------------


def _job_status(job: Obj) -> str:
    conditions = _dig(job, "status", "conditions")
    if _condition_true(conditions, "Complete"):
        return "Complete"
    if _condition_true(conditions, "Failed"):
        return "Failed"
    if _deleting(job):
        return "Terminating"
    if _condition_true(conditions, "Suspended"):
        return "Suspended"
    if _condition_true(conditions, "FailureTarget"):
        return "FailureTarget"
    if _condition_true(conditions, "SuccessCriteriaMet"):
        # Shown since Kubernetes 1.34 (success policies).
        return "SuccessCriteriaMet"
    return "Running"


def _job_completions(job: Obj) -> str:
    succeeded = _int(_dig(job, "status", "succeeded"))
    completions = _opt_int(_dig(job, "spec", "completions"))
    if completions is not None:
        return f"{succeeded}/{completions}"
    parallelism = _opt_int(_dig(job, "spec", "parallelism")) or 0
    if parallelism > 1:
        return f"{succeeded}/1 of {parallelism}"
    return f"{succeeded}/1"


def _job_duration(job: Obj) -> str:
    started = _parse_time(_dig(job, "status", "startTime"))
    if started is None:
        return ""
    completed = _parse_time(_dig(job, "status", "completionTime"))
    return human_duration(completed - started) if completed else _ago(started)


JOB_COLUMNS: tuple[Column, ...] = (
    _name_column(),
    Column("Status", _job_status, description="Status of the job."),
    Column(
        "Completions",
        _job_completions,
        description="The number of pods which reached phase Succeeded.",
    ),
    Column("Duration", _job_duration, description="Time required to complete the job."),
    AGE,
    *_template_columns(_spec_selector),
)


def _cron_job_template_spec(cron_job: Obj) -> Any:
    return _dig(cron_job, "spec", "jobTemplate", "spec", "template", "spec")


def _cron_job_suspend(cron_job: Obj) -> str:
    # Go's printBoolPtr; an unset suspend is defaulted to false upstream.
    return "True" if _dig(cron_job, "spec", "suspend") is True else "False"


def _cron_job_last_schedule(cron_job: Obj) -> str:
    last = _dig(cron_job, "status", "lastScheduleTime")
    return "<none>" if last is None else _since(last)


CRON_JOB_COLUMNS: tuple[Column, ...] = (
    _name_column(),
    Column(
        "Schedule",
        lambda o: _str(_dig(o, "spec", "schedule")),
        description="The schedule in Cron format, see https://en.wikipedia.org/wiki/Cron.",
    ),
    Column(
        "Timezone",
        lambda o: _str(_dig(o, "spec", "timeZone")) or "<none>",
        description="The time zone name for the given schedule.",
    ),
    Column(
        "Suspend",
        _cron_job_suspend,
        type="boolean",
        description=(
            "This flag tells the controller to suspend subsequent executions, it does not apply "
            "to already started executions. Defaults to false."
        ),
    ),
    Column(
        "Active",
        lambda o: len(_list(_dig(o, "status", "active"))),
        type="integer",
        description="A list of pointers to currently running jobs.",
    ),
    Column(
        "Last Schedule",
        _cron_job_last_schedule,
        description="Information when was the last time the job was successfully scheduled.",
    ),
    AGE,
    _wide(
        Column(
            "Containers",
            lambda o: _container_names(_cron_job_template_spec(o)),
            description=D_CONTAINERS,
        )
    ),
    _wide(
        Column(
            "Images",
            lambda o: _container_images(_cron_job_template_spec(o)),
            description=D_IMAGES,
        )
    ),
    _wide(
        Column(
            "Selector",
            lambda o: format_label_selector(_dig(o, "spec", "jobTemplate", "spec", "selector")),
            description=D_SELECTOR,
        )
    ),
)


# ---------------------------------------------------------------------------------------------
# networking.k8s.io/v1, discovery.k8s.io/v1.
# ---------------------------------------------------------------------------------------------


def _ingress_hosts(ingress: Obj) -> str:
    """The first three rule hosts, ``+ N more...`` (N counts every further rule), or ``*``."""
    rules = _dicts(_dig(ingress, "spec", "rules"))
    hosts: list[str] = []
    more = False
    for rule in rules:
        if len(hosts) == 3:
            more = True
        if not more and _str(rule.get("host")):
            hosts.append(rule["host"])
    if not hosts:
        return "*"
    text = ",".join(hosts)
    return f"{text} + {len(rules) - 3} more..." if more else text


INGRESS_COLUMNS: tuple[Column, ...] = (
    _name_column(),
    Column(
        "Class",
        lambda o: _str(_dig(o, "spec", "ingressClassName")) or "<none>",
        description=(
            "The name of the IngressClass resource that should be used for additional configuration"
        ),
    ),
    Column(
        "Hosts",
        _ingress_hosts,
        description="Hosts that incoming requests are matched against before the ingress rule",
    ),
    Column(
        "Address",
        lambda o: _load_balancer_ingress(_dig(o, "status", "loadBalancer", "ingress")),
        description="Address is a list containing ingress points for the load-balancer",
    ),
    Column(
        "Ports",
        lambda o: "80, 443" if _list(_dig(o, "spec", "tls")) else "80",
        description="Ports of TLS configurations that open",
    ),
    AGE,
)


def _ingress_class_parameters(ingress_class: Obj) -> str:
    parameters = _dig(ingress_class, "spec", "parameters")
    if not isinstance(parameters, dict):
        return "<none>"
    text = _str(parameters.get("kind"))
    if isinstance(parameters.get("apiGroup"), str):
        text += "." + parameters["apiGroup"]
    return f"{text}/{_str(parameters.get('name'))}"


INGRESS_CLASS_COLUMNS: tuple[Column, ...] = (
    _name_column(),
    Column(
        "Controller",
        lambda o: _str(_dig(o, "spec", "controller")),
        description="Controller that is responsible for handling this class",
    ),
    Column(
        "Parameters",
        _ingress_class_parameters,
        description="A reference to a resource with additional parameters",
    ),
    AGE,
)


def _unset_if_empty(items: list[str], count: int) -> str:
    return _more(items, count) or "<unset>"


def _slice_ports(endpoint_slice: Obj) -> str:
    ports = _dicts(endpoint_slice.get("ports"))
    names = []
    for port in ports:
        number = _opt_int(port.get("port"))
        if number is not None:
            names.append(str(number))
        elif isinstance(port.get("name"), str):
            names.append(port["name"])
        else:
            names.append("*")
    return _unset_if_empty(names, len(ports))


def _slice_endpoints(endpoint_slice: Obj) -> str:
    addresses = [
        address
        for endpoint in _dicts(endpoint_slice.get("endpoints"))
        for address in _list(endpoint.get("addresses"))
        if isinstance(address, str)
    ]
    return _unset_if_empty(addresses, len(addresses))


ENDPOINT_SLICE_COLUMNS: tuple[Column, ...] = (
    _name_column(),
    Column(
        "AddressType",
        lambda o: _str(o.get("addressType")),
        description=(
            "addressType specifies the type of address carried by this EndpointSlice. All "
            "addresses in this slice must be the same type."
        ),
    ),
    Column(
        "Ports",
        _slice_ports,
        description=(
            "ports specifies the list of network ports exposed by each endpoint in this slice."
        ),
    ),
    Column(
        "Endpoints",
        _slice_endpoints,
        description="endpoints is a list of unique endpoints in this slice.",
    ),
    AGE,
)


# ---------------------------------------------------------------------------------------------
# storage, rbac, coordination, scheduling, policy.
# ---------------------------------------------------------------------------------------------

_DEFAULT_CLASS_ANNOTATIONS = (
    "storageclass.kubernetes.io/is-default-class",
    "storageclass.beta.kubernetes.io/is-default-class",
)


def _annotated_default(storage_class: Obj) -> bool:
    annotations = _dict(_dig(storage_class, "metadata", "annotations"))
    return any(annotations.get(key) == "true" for key in _DEFAULT_CLASS_ANNOTATIONS)


def _storage_class_name(storage_class: Obj) -> str:
    # Without the other classes at hand every annotated class is marked, as upstream does
    # when it cannot list them; table_row_cells(peers=...) narrows this to the effective one.
    return _name(storage_class) + (" (default)" if _annotated_default(storage_class) else "")


def effective_default_storage_class(storage_classes: Iterable[Obj]) -> str | None:
    """The name of the StorageClass that new claims without a class actually get.

    Among the classes annotated as default, the most recently created wins (ties go to the
    alphabetically first name). Since Kubernetes 1.36 only this one is printed ``(default)``.
    """
    oldest = datetime.min.replace(tzinfo=UTC)
    defaults = [sc for sc in storage_classes if isinstance(sc, dict) and _annotated_default(sc)]
    if not defaults:
        return None
    newest = min(
        defaults,
        key=lambda sc: (
            -(_parse_time(_dig(sc, "metadata", "creationTimestamp")) or oldest).timestamp(),
            _name(sc),
        ),
    )
    return _name(newest)


STORAGE_CLASS_COLUMNS: tuple[Column, ...] = (
    _name_column(_storage_class_name),
    Column(
        "Provisioner",
        lambda o: _str(o.get("provisioner")),
        description="provisioner indicates the type of the provisioner.",
    ),
    Column(
        "ReclaimPolicy",
        lambda o: _str(o.get("reclaimPolicy")) or "Delete",
        description=(
            "reclaimPolicy controls the reclaimPolicy for dynamically provisioned "
            "PersistentVolumes of this storage class. Defaults to Delete."
        ),
    ),
    Column(
        "VolumeBindingMode",
        lambda o: _str(o.get("volumeBindingMode")) or "Immediate",
        description=(
            "volumeBindingMode indicates how PersistentVolumeClaims should be provisioned and "
            "bound. When unset, VolumeBindingImmediate is used."
        ),
    ),
    Column(
        "AllowVolumeExpansion",
        lambda o: o.get("allowVolumeExpansion") is True,
        description="allowVolumeExpansion shows whether the storage class allow volume expand.",
    ),
    AGE,
)


def _subjects(kind: str) -> Callable[[Obj], str]:
    """rbac.SubjectsStrings: users, groups or ``namespace/name`` service accounts."""

    def cell(binding: Obj) -> str:
        names = []
        for subject in _dicts(binding.get("subjects")):
            if subject.get("kind") != kind:
                continue
            name = _str(subject.get("name"))
            if kind == "ServiceAccount":
                name = f"{_str(subject.get('namespace'))}/{name}"
            names.append(name)
        return ", ".join(names)

    return cell


def _binding_columns(what: str, role_description: str) -> tuple[Column, ...]:
    return (
        _name_column(),
        Column(
            "Role",
            lambda o: f"{_str(_dig(o, 'roleRef', 'kind'))}/{_str(_dig(o, 'roleRef', 'name'))}",
            description=role_description,
        ),
        AGE,
        Column("Users", _subjects("User"), priority=1, description=f"Users in the {what}"),
        Column("Groups", _subjects("Group"), priority=1, description=f"Groups in the {what}"),
        Column(
            "ServiceAccounts",
            _subjects("ServiceAccount"),
            priority=1,
            description=f"ServiceAccounts in the {what}",
        ),
    )


ROLE_BINDING_COLUMNS = _binding_columns(
    "roleBinding",
    "roleRef can reference a Role in the current namespace or a ClusterRole in the global "
    "namespace. If the RoleRef cannot be resolved, the Authorizer must return an error.",
)
CLUSTER_ROLE_BINDING_COLUMNS = _binding_columns(
    "clusterRoleBinding",
    "roleRef can only reference a ClusterRole in the global namespace. If the RoleRef cannot be "
    "resolved, the Authorizer must return an error.",
)

LEASE_COLUMNS: tuple[Column, ...] = (
    _name_column(),
    Column(
        "Holder",
        lambda o: _str(_dig(o, "spec", "holderIdentity")),
        description="holderIdentity contains the identity of the holder of a current lease.",
    ),
    AGE,
)

PRIORITY_CLASS_COLUMNS: tuple[Column, ...] = (
    _name_column(),
    Column(
        "Value",
        lambda o: _int(o.get("value")),
        type="integer",
        description="value represents the integer value of this priority class.",
    ),
    Column(
        "Global-Default",
        lambda o: o.get("globalDefault") is True,
        type="boolean",
        description=(
            "globalDefault specifies whether this PriorityClass should be considered as the "
            "default priority for pods that do not have any priority class."
        ),
    ),
    AGE,
    Column(
        "PreemptionPolicy",
        # Upstream defaults the policy to PreemptLowerPriority.
        lambda o: _str(o.get("preemptionPolicy")) or "PreemptLowerPriority",
        description=(
            "preemptionPolicy is the Policy for preempting pods with lower priority. One of "
            "Never, PreemptLowerPriority."
        ),
    ),
)


def _budget(field: str) -> Callable[[Obj], str]:
    def cell(budget: Obj) -> str:
        value = _dig(budget, "spec", field)
        return "N/A" if value is None else _int_or_string(value)

    return cell


POD_DISRUPTION_BUDGET_COLUMNS: tuple[Column, ...] = (
    _name_column(),
    Column(
        "Min Available",
        _budget("minAvailable"),
        description="The minimum number of pods that must be available.",
    ),
    Column(
        "Max Unavailable",
        _budget("maxUnavailable"),
        description="The maximum number of pods that may be unavailable.",
    ),
    Column(
        "Allowed Disruptions",
        lambda o: _int(_dig(o, "status", "disruptionsAllowed")),
        type="integer",
        description="Calculated number of pods that may be disrupted at this time.",
    ),
    AGE,
)


# ---------------------------------------------------------------------------------------------
# The table of contents and the API the Table rendering uses.
# ---------------------------------------------------------------------------------------------

COLUMNS: dict[str, tuple[Column, ...]] = {
    "Namespace": NAMESPACE_COLUMNS,
    "Node": NODE_COLUMNS,
    "Pod": POD_COLUMNS,
    "ReplicationController": REPLICATION_CONTROLLER_COLUMNS,
    "Service": SERVICE_COLUMNS,
    "Endpoints": ENDPOINTS_COLUMNS,
    "ConfigMap": CONFIG_MAP_COLUMNS,
    "Secret": SECRET_COLUMNS,
    "ServiceAccount": SERVICE_ACCOUNT_COLUMNS,
    "Event": EVENT_COLUMNS,
    "PersistentVolume": PERSISTENT_VOLUME_COLUMNS,
    "PersistentVolumeClaim": PERSISTENT_VOLUME_CLAIM_COLUMNS,
    "ResourceQuota": RESOURCE_QUOTA_COLUMNS,
    # Upstream has no printer for these: its default table convertor prints Name, Created At.
    "LimitRange": DEFAULT_COLUMNS,
    "Role": DEFAULT_COLUMNS,
    "ClusterRole": DEFAULT_COLUMNS,
    "Deployment": DEPLOYMENT_COLUMNS,
    "ReplicaSet": REPLICA_SET_COLUMNS,
    "StatefulSet": STATEFUL_SET_COLUMNS,
    "DaemonSet": DAEMON_SET_COLUMNS,
    "ControllerRevision": CONTROLLER_REVISION_COLUMNS,
    "Job": JOB_COLUMNS,
    "CronJob": CRON_JOB_COLUMNS,
    "Ingress": INGRESS_COLUMNS,
    "IngressClass": INGRESS_CLASS_COLUMNS,
    "StorageClass": STORAGE_CLASS_COLUMNS,
    "RoleBinding": ROLE_BINDING_COLUMNS,
    "ClusterRoleBinding": CLUSTER_ROLE_BINDING_COLUMNS,
    "Lease": LEASE_COLUMNS,
    "EndpointSlice": ENDPOINT_SLICE_COLUMNS,
    "PriorityClass": PRIORITY_CLASS_COLUMNS,
    "PodDisruptionBudget": POD_DISRUPTION_BUDGET_COLUMNS,
}


def columns_for(kind: str) -> tuple[Column, ...]:
    """The printer columns of a kind; the default Name / Created At pair for unknown kinds."""
    return COLUMNS.get(kind, DEFAULT_COLUMNS)


def column_definitions(kind: str) -> list[dict[str, Any]]:
    """The Table's ``columnDefinitions`` for a kind (meta.k8s.io/v1 TableColumnDefinition)."""
    return [
        {
            "name": column.name,
            "type": column.type,
            "format": column.format,
            "description": column.description,
            "priority": column.priority,
        }
        for column in columns_for(kind)
    ]


def table_row_cells(kind: str, obj: Obj, *, peers: Iterable[Obj] | None = None) -> list[Any]:
    """One Table row's ``cells`` for an object, in column order (wide columns included).

    ``peers`` are all objects of the kind (the listed items, or every stored one for a single
    get). Only StorageClass needs them: upstream marks just the effective default class
    ``(default)``, which a single object cannot tell. Without peers each annotated class is
    marked, which is what upstream falls back to too.
    """
    obj = obj if isinstance(obj, dict) else {}
    cells = _cells(columns_for(kind), obj)
    if kind == "StorageClass" and peers is not None:
        effective = effective_default_storage_class([obj, *peers])
        cells[0] = _name(obj) + (" (default)" if _name(obj) == effective else "")
    return cells


# Per-thread memo of values several cells of one row share (see ``_pod_summary``).
_row_memo = threading.local()


def _cells(columns: Iterable[Column], obj: Obj) -> list[Any]:
    _row_memo.__dict__.clear()
    cells = []
    for column in columns:
        try:
            cells.append(column.cell(obj))
        except Exception:
            # The cell functions tolerate partial objects; this is the last line of defence so
            # that one malformed stored object cannot fail a whole `kubectl get` listing.
            cells.append("<unknown>")
    return cells
