"""Decode Kubernetes protobuf request bodies into their JSON form.

Why this exists
---------------
``kubectl create <generator>`` and ``kubectl auth can-i|whoami`` build typed Go
objects and send them with ``Content-Type: application/vnd.kubernetes.protobuf``
-- there is no JSON fallback.  Berth's handlers work on JSON, so this module turns
such a body into exactly the dict that Kubernetes' own JSON encoder would have
produced for the same object; the server then treats it like a JSON body.

Flow
----
1. The body starts with the 4-byte magic ``k8s\\0`` followed by a
   ``runtime.Unknown`` message: ``typeMeta`` (apiVersion, kind), ``raw`` (the
   object's own protobuf bytes), ``contentEncoding`` and ``contentType``.
2. ``(apiVersion, kind)`` selects the object's message in
   `clusterapi.api.protobuf_messages.KINDS`; an unknown pair is an error, never a
   silent drop.
3. `_Decoder` walks ``raw`` with a small wire-format reader, driven by the
   per-message field tables in `clusterapi.api.protobuf_messages.MESSAGES`.
   Field numbers a table does not know are skipped (a newer client may send
   newer fields); message types it does not know are errors.
4. Values get their JSON shape: ``resource.Quantity`` and ``IntOrString``
   become strings/ints, ``metav1.Time`` an RFC 3339 string, ``bytes`` base64,
   maps objects, repeated fields lists.  Zero scalars that Go would drop under
   ``omitempty`` are dropped; zeros of pointer fields are kept (see the table
   module for the rules).

No generated protobuf code is involved; the reader below implements the few
wire types Kubernetes uses (varint, 64-bit, length-delimited, 32-bit).
"""

from __future__ import annotations

import base64
import json
import struct
from datetime import UTC, datetime
from typing import Any, Final

from clusterapi.api.protobuf_messages import KINDS, MESSAGES, Field

__all__ = ["CONTENT_TYPE", "MAGIC", "ProtobufError", "decode", "decode_message"]

CONTENT_TYPE: Final = "application/vnd.kubernetes.protobuf"
"""The media type kubectl uses for protobuf bodies."""

MAGIC: Final = b"k8s\x00"
"""Prefix of every Kubernetes protobuf envelope."""

# Wire types (the low three bits of a field key).
_VARINT: Final = 0
_FIXED64: Final = 1
_BYTES: Final = 2
_FIXED32: Final = 5
_WIRE_NAMES: Final = {
    _VARINT: "varint",
    _FIXED64: "64-bit",
    _BYTES: "length-delimited",
    3: "start-group",
    4: "end-group",
    _FIXED32: "32-bit",
}

# Types whose zero value Go's JSON encoder drops under ``omitempty``.  The special
# value types (Quantity, IntOrString, Duration) are structs in Go, which
# ``omitempty`` never drops, so a zero of theirs that is on the wire stays.
_OMITTABLE: Final = frozenset({"str", "bytes", "bool", "i32", "i64", "f64"})

# Scalar types whose repeated form may arrive packed in one length-delimited field.
_PACKABLE: Final = frozenset({"bool", "i32", "i64", "f64"})

# RawExtension payloads may themselves be protobuf envelopes; bound the recursion.
_MAX_DEPTH: Final = 32

# JSON content types that RawExtension/Unknown payloads may declare.
_JSON_TYPES: Final = frozenset({"application/json", "application/json; charset=utf-8"})


class ProtobufError(ValueError):
    """The body is not a Kubernetes protobuf message Berth can decode.

    The message says what is wrong and, for wire-level problems, at which byte
    offset of the request body.
    """


class _Reader:
    """Reads protobuf wire primitives from ``buf[pos:end]``.

    Offsets are absolute positions in the request body, so error messages point
    at the right byte even deep inside nested messages.
    """

    __slots__ = ("buf", "end", "pos")

    def __init__(self, buf: bytes, pos: int = 0, end: int | None = None) -> None:
        self.buf = buf
        self.pos = pos
        self.end = len(buf) if end is None else end

    def at_end(self) -> bool:
        return self.pos >= self.end

    def varint(self) -> int:
        start = self.pos
        result = 0
        shift = 0
        while True:
            if self.pos >= self.end:
                raise ProtobufError(f"truncated varint at byte {start}")
            byte = self.buf[self.pos]
            self.pos += 1
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                break
            shift += 7
            if shift >= 70:
                # A 64-bit value never needs more than ten bytes.
                raise ProtobufError(f"malformed varint (over 10 bytes) at byte {start}")
        return result & 0xFFFF_FFFF_FFFF_FFFF

    def key(self) -> tuple[int, int]:
        at = self.pos
        raw = self.varint()
        number, wire_type = raw >> 3, raw & 7
        if number == 0:
            raise ProtobufError(f"invalid field number 0 at byte {at}")
        return number, wire_type

    def fixed(self, size: int) -> bytes:
        if self.end - self.pos < size:
            raise ProtobufError(f"truncated {size * 8}-bit value at byte {self.pos}")
        chunk = self.buf[self.pos : self.pos + size]
        self.pos += size
        return chunk

    def length_delimited(self) -> tuple[int, int]:
        """Return the ``(start, end)`` of a length-delimited payload and skip it."""
        at = self.pos
        length = self.varint()
        start = self.pos
        if length > self.end - start:
            raise ProtobufError(
                f"truncated field at byte {at}: length {length} exceeds the "
                f"{self.end - start} remaining bytes"
            )
        self.pos = start + length
        return start, self.pos

    def chunk(self) -> bytes:
        start, end = self.length_delimited()
        return bytes(self.buf[start:end])

    def sub(self) -> _Reader:
        start, end = self.length_delimited()
        return _Reader(self.buf, start, end)

    def skip(self, wire_type: int, at: int) -> None:
        if wire_type == _VARINT:
            self.varint()
        elif wire_type == _FIXED64:
            self.fixed(8)
        elif wire_type == _BYTES:
            self.length_delimited()
        elif wire_type == _FIXED32:
            self.fixed(4)
        else:
            # Groups (3/4) are obsolete and never produced by Kubernetes; 6/7 are invalid.
            name = _WIRE_NAMES.get(wire_type, "invalid")
            raise ProtobufError(f"unsupported wire type {wire_type} ({name}) at byte {at}")


def _signed64(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _signed32(value: int) -> int:
    # Negative int32 values are sign-extended to ten-byte varints; keep the low 32 bits.
    value &= 0xFFFF_FFFF
    return value - (1 << 32) if value >= 1 << 31 else value


def _rfc3339(seconds: int, nanos: int, micro: bool, at: int) -> str:
    try:
        moment = datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise ProtobufError(f"timestamp {seconds}s out of range at byte {at}") from exc
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if micro:
        # MicroTime keeps microseconds ("2006-01-02T15:04:05.000000Z07:00").
        text += f".{(nanos // 1000) % 1_000_000:06d}"
    # metav1.Time marshals with second precision; its nanos are dropped.
    return text + "Z"


_DURATION_UNITS: Final = ((3_600_000_000_000, "h"), (60_000_000_000, "m"))


def _go_duration(nanos: int) -> str:
    """Format nanoseconds the way Go's ``time.Duration.String`` does."""
    if nanos == 0:
        return "0s"
    sign = "-" if nanos < 0 else ""
    rest = abs(nanos)
    if rest < 1_000_000_000:
        # Sub-second durations use the largest unit that keeps a leading digit.
        for size, unit in ((1_000_000, "ms"), (1_000, "µs"), (1, "ns")):
            if rest >= size:
                return sign + _fraction(rest, size) + unit
    text = ""
    for size, unit in _DURATION_UNITS:
        if rest >= size or text:
            text += f"{rest // size}{unit}"
            rest %= size
    return sign + text + _fraction(rest, 1_000_000_000) + "s"


def _fraction(value: int, unit: int) -> str:
    whole, frac = divmod(value, unit)
    if not frac:
        return str(whole)
    digits = len(str(unit)) - 1
    return f"{whole}.{frac:0{digits}d}".rstrip("0")


class _Decoder:
    """Turns protobuf messages into JSON-ready Python values using the tables."""

    def __init__(self, depth: int = 0) -> None:
        self.depth = depth

    def message(self, name: str, reader: _Reader) -> dict[str, Any]:
        table = MESSAGES.get(name)
        if table is None:
            raise ProtobufError(f"unsupported protobuf message {name}")
        out: dict[str, Any] = {}
        while not reader.at_end():
            at = reader.pos
            number, wire_type = reader.key()
            field = table.get(number)
            if field is None:
                # Forward compatibility: newer clients may send fields we do not know.
                reader.skip(wire_type, at)
                continue
            self._field(name, field, number, wire_type, reader, out, at)
        return out

    def _field(
        self,
        message: str,
        field: Field,
        number: int,
        wire_type: int,
        reader: _Reader,
        out: dict[str, Any],
        at: int,
    ) -> None:
        if field.map:
            self._expect(message, field, number, wire_type, _BYTES, at)
            key, value = self._map_entry(message, field, reader.sub())
            out.setdefault(field.json, {})[key] = value
            return
        if field.repeated:
            items = out.setdefault(field.json, [])
            if wire_type == _BYTES and field.type in _PACKABLE:
                # Packed encoding: one length-delimited run of scalars.
                packed = reader.sub()
                while not packed.at_end():
                    items.append(self._scalar(field.type, packed))
            else:
                item = self._value(message, field, number, wire_type, reader, at)
                if item is not _OMIT:
                    items.append(item)
            return
        value = self._value(message, field, number, wire_type, reader, at)
        if field.json == "":
            # A struct Go embeds inline: its keys belong to the parent object.
            out.update(value)
        elif value is _OMIT or (
            not field.keep_zero and field.type in _OMITTABLE and _is_zero(value)
        ):
            # Proto semantics are "last one wins", so a later zero clears an earlier value.
            out.pop(field.json, None)
        elif isinstance(value, dict) and isinstance(out.get(field.json), dict):
            # Repeated occurrences of a singular message field merge.
            out[field.json].update(value)
        else:
            out[field.json] = value

    def _value(
        self,
        message: str,
        field: Field,
        number: int,
        wire_type: int,
        reader: _Reader,
        at: int,
    ) -> Any:
        expected = _wire_of(field.type)
        self._expect(message, field, number, wire_type, expected, at)
        if field.message is not None:
            return self.message(field.message, reader.sub())
        if expected == _BYTES and field.type not in ("str", "bytes"):
            return self._special(field.type, reader.sub(), at)
        return self._scalar(field.type, reader)

    @staticmethod
    def _expect(message: str, field: Field, number: int, got: int, expected: int, at: int) -> None:
        if got != expected:
            raise ProtobufError(
                f"field {message}.{field.json or '<inline>'} (#{number}) at byte {at} has "
                f"wire type {_WIRE_NAMES.get(got, got)}, expected {_WIRE_NAMES[expected]}"
            )

    @staticmethod
    def _scalar(type_: str, reader: _Reader) -> Any:
        if type_ == "str":
            # Go's JSON encoder replaces invalid UTF-8 with U+FFFD; so do we.
            return reader.chunk().decode("utf-8", errors="replace")
        if type_ == "bytes":
            return base64.b64encode(reader.chunk()).decode("ascii")
        if type_ == "f64":
            return struct.unpack("<d", reader.fixed(8))[0]
        value = reader.varint()
        if type_ == "bool":
            return value != 0
        if type_ == "i32":
            return _signed32(value)
        return _signed64(value)

    def _map_entry(self, message: str, field: Field, entry: _Reader) -> tuple[str, Any]:
        """Decode one ``map<string, V>`` entry: key is field 1, value field 2."""
        key = ""
        value: Any = _OMIT
        while not entry.at_end():
            at = entry.pos
            number, wire_type = entry.key()
            if number == 1:
                if wire_type != _BYTES:
                    raise ProtobufError(
                        f"map key of {message}.{field.json} at byte {at} is not a string"
                    )
                key = entry.chunk().decode("utf-8", errors="replace")
            elif number == 2:
                value = self._value(message, field, number, wire_type, entry, at)
            else:
                entry.skip(wire_type, at)
        if value is _OMIT:
            value = self._empty(field)
        return key, value

    @staticmethod
    def _empty(field: Field) -> Any:
        """The JSON value of an absent map value (proto's default for its type)."""
        if field.message is not None:
            return {}
        return {
            "str": "",
            "bytes": "",
            "bool": False,
            "i32": 0,
            "i64": 0,
            "f64": 0.0,
            "quantity": "0",
            "intstr": 0,
            "extra": [],
        }.get(field.type)

    def _special(self, type_: str, reader: _Reader, at: int) -> Any:
        """Value types that are messages on the wire but have their own JSON form.

        ``at`` is the offset of the field, for error messages.
        """
        fields = self._raw_fields(reader)
        if type_ == "quantity":
            # A zero Quantity has no string; Go renders it as "0".
            return _text(fields.get(1)) or "0"
        if type_ == "intstr":
            kind = _int(fields.get(1))
            if kind == 0:
                return _signed32(_int(fields.get(2)))
            if kind == 1:
                return _text(fields.get(3))
            raise ProtobufError(f"IntOrString has unknown type {kind} at byte {at}")
        if type_ in ("meta.Time", "meta.MicroTime"):
            seconds = _signed64(_int(fields.get(1)))
            nanos = _signed32(_int(fields.get(2)))
            if seconds == 0 and nanos == 0:
                # The zero time: Go emits null / omits it, never "1970-01-01...".
                return _OMIT
            return _rfc3339(seconds, nanos, type_ == "meta.MicroTime", at)
        if type_ == "meta.Duration":
            return _go_duration(_signed64(_int(fields.get(1))))
        if type_ == "extra":
            return [_text(item) for item in fields.get_all(1)]
        # runtime.RawExtension and metav1.FieldsV1 carry a JSON document in field 1.
        raw = fields.get(1)
        if not isinstance(raw, bytes) or not raw:
            return _OMIT
        return self._embedded(raw, at)

    def _embedded(self, raw: bytes, at: int) -> Any:
        if raw.startswith(MAGIC):
            # A RawExtension may hold a nested protobuf envelope.
            if self.depth >= _MAX_DEPTH:
                raise ProtobufError(f"embedded objects nested too deeply at byte {at}")
            return _decode_envelope(raw, self.depth + 1)
        try:
            return json.loads(raw)
        except (UnicodeDecodeError, ValueError) as exc:
            raise ProtobufError(f"embedded object at byte {at} is not JSON: {exc}") from exc

    @staticmethod
    def _raw_fields(reader: _Reader) -> _RawFields:
        fields = _RawFields()
        while not reader.at_end():
            at = reader.pos
            number, wire_type = reader.key()
            if wire_type == _VARINT:
                fields.add(number, reader.varint())
            elif wire_type == _BYTES:
                fields.add(number, reader.chunk())
            else:
                reader.skip(wire_type, at)
        return fields


class _Omit:
    """Marker for "no JSON value" (zero time, empty raw extension)."""

    def __repr__(self) -> str:
        return "<omit>"


_OMIT: Final = _Omit()


class _RawFields:
    """Field number -> values of a small message decoded without a table."""

    __slots__ = ("values",)

    def __init__(self) -> None:
        self.values: dict[int, list[int | bytes]] = {}

    def add(self, number: int, value: int | bytes) -> None:
        self.values.setdefault(number, []).append(value)

    def get(self, number: int) -> int | bytes | None:
        found = self.values.get(number)
        return found[-1] if found else None

    def get_all(self, number: int) -> list[int | bytes]:
        return self.values.get(number, [])


def _int(value: int | bytes | None) -> int:
    return value if isinstance(value, int) else 0


def _text(value: int | bytes | None) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else ""


def _wire_of(type_: str) -> int:
    if type_ in ("bool", "i32", "i64"):
        return _VARINT
    if type_ == "f64":
        return _FIXED64
    return _BYTES


def _is_zero(value: Any) -> bool:
    return value is False or value == "" or (type(value) in (int, float) and value == 0)


def _decode_envelope(body: bytes, depth: int) -> dict[str, Any]:
    if not body.startswith(MAGIC):
        raise ProtobufError(
            "not a Kubernetes protobuf body: it must start with the magic bytes 6b 38 73 00"
        )
    reader = _Reader(body, len(MAGIC))
    api_version = kind = content_encoding = content_type = ""
    raw: tuple[int, int] | None = None
    while not reader.at_end():
        at = reader.pos
        number, wire_type = reader.key()
        if number in (1, 2, 3, 4) and wire_type != _BYTES:
            raise ProtobufError(
                f"runtime.Unknown field #{number} at byte {at} is not length-delimited"
            )
        if number == 1:
            type_meta = reader.sub()
            while not type_meta.at_end():
                meta_at = type_meta.pos
                meta_number, meta_wire = type_meta.key()
                if meta_number in (1, 2) and meta_wire == _BYTES:
                    text = type_meta.chunk().decode("utf-8", errors="replace")
                    if meta_number == 1:
                        api_version = text
                    else:
                        kind = text
                else:
                    type_meta.skip(meta_wire, meta_at)
        elif number == 2:
            raw = reader.length_delimited()
        elif number == 3:
            content_encoding = reader.chunk().decode("utf-8", errors="replace")
        elif number == 4:
            content_type = reader.chunk().decode("utf-8", errors="replace")
        else:
            reader.skip(wire_type, at)

    if content_encoding:
        raise ProtobufError(f"unsupported protobuf content encoding {content_encoding!r}")
    if not api_version or not kind:
        raise ProtobufError("protobuf body has no apiVersion/kind in its runtime.Unknown typeMeta")
    start, end = raw if raw is not None else (reader.pos, reader.pos)
    obj: dict[str, Any] = {"kind": kind, "apiVersion": api_version}
    if content_type in _JSON_TYPES:
        # An envelope may wrap a JSON document instead of protobuf bytes.
        try:
            payload = json.loads(body[start:end])
        except (UnicodeDecodeError, ValueError) as exc:
            raise ProtobufError(f"JSON payload of {api_version} {kind} is invalid: {exc}") from exc
        if not isinstance(payload, dict):
            raise ProtobufError(f"JSON payload of {api_version} {kind} is not an object")
        obj.update(payload)
        return obj
    if content_type and content_type != CONTENT_TYPE:
        raise ProtobufError(f"unsupported payload content type {content_type!r}")
    # DeleteOptions is registered in every group version under the same message.
    message = "meta.DeleteOptions" if kind == "DeleteOptions" else KINDS.get((api_version, kind))
    if message is None:
        raise ProtobufError(f"unsupported protobuf kind {api_version} {kind}")
    obj.update(_Decoder(depth).message(message, _Reader(body, start, end)))
    return obj


def decode(body: bytes | bytearray | memoryview) -> dict[str, Any]:
    """Decode a ``application/vnd.kubernetes.protobuf`` request body.

    Returns the object as Kubernetes would encode it in JSON, including its
    ``apiVersion`` and ``kind``.  Raises `ProtobufError` for a body that is not
    a well-formed envelope, names a kind Berth has no tables for, or holds a
    field whose wire type contradicts its table.
    """
    return _decode_envelope(bytes(body), 0)


def decode_message(message: str, data: bytes | bytearray | memoryview) -> dict[str, Any]:
    """Decode bare protobuf bytes of one table message, e.g. ``"core.PodSpec"``.

    Useful for payloads that are not wrapped in a ``runtime.Unknown`` envelope.
    """
    return _Decoder().message(message, _Reader(bytes(data)))
