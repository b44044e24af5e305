"""One schema for every value a client sends: the HELLO and CONFIG fields (and the HTTP form fields).

Why one place: each value that once stopped the server (a Unicode digit in ``keep``,
a 400-digit threshold, 100,000 ``[``) slipped through because the checks were spread
over the codec, the dataclass and the class lookup.  Here a payload is size- and
depth-checked *before* ``json.loads`` runs, numbers are parsed by hooks that refuse
huge integers and non-finite values, and every field is checked against one table
row (type, range, length).  Anything wrong raises :class:`ProtocolError` with a code.

To add a CONFIG key: add the field to :class:`~m2fp_protocol.config.StreamConfig`
and one row to :data:`CONFIG_SCHEMA` (a test checks the two agree).
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from .errors import ProtocolError
from .messages import ErrorCode

#: Largest HELLO or CONFIG payload (bytes).  A real CONFIG is a few hundred bytes; the cap keeps
#: a hostile one from costing the I/O thread a deep copy and a huge ACK (it is checked before any copy).
MAX_REQUEST_JSON_BYTES = 16 * 1024
#: Largest JSON of any kind (INFO, ACK, ERROR: what a client receives).
MAX_JSON_BYTES = 1 << 20
#: Deepest nesting of arrays/objects accepted; checked by a scan before the recursive parser runs.
MAX_JSON_DEPTH = 16
#: Longest integer literal (digits): more is never a setting, and Python's int() has a 4,300-digit limit.
MAX_INT_DIGITS = 18
#: Longest string value in a request, and most entries in ``keep`` / ``engine_options``.
MAX_STRING = 1024
MAX_NAME = 64
MAX_ITEMS = 64
#: A class id in ``keep``: ASCII decimal, at most this many digits ("²" and "١" are digits to str.isdigit()).
_CLASS_ID = re.compile(r"[0-9]{1,4}")
_OPTION_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]{0,63}")
_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"?|[\[\]{}]')


# --------------------------------------------------------------------------- JSON
def parse_json(data: bytes | memoryview, what: str, code: ErrorCode, max_bytes: int = MAX_JSON_BYTES,
               max_depth: int = MAX_JSON_DEPTH) -> Any:
    """``json.loads`` with limits: size, depth, integer digits, finite numbers.  Empty = ``{}``."""
    if len(data) > max_bytes:
        raise ProtocolError(ErrorCode.TOO_LARGE, f"{what} payload is {len(data)} bytes, limit {max_bytes}")
    if len(data) == 0:
        return {}
    try:
        text = bytes(data).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProtocolError(code, f"{what} payload is not UTF-8: {exc}") from None
    depth = deepest = 0
    for m in _TOKENS.finditer(text):
        tok = m.group()
        if tok in "[{":
            depth += 1
            if depth > max_depth:
                raise ProtocolError(code, f"{what} payload is nested deeper than {max_depth} levels")
        elif tok in "]}":
            depth -= 1
        deepest = max(deepest, depth)
    try:
        return json.loads(text, parse_int=_parse_int, parse_float=_parse_float, parse_constant=_no_constant)
    except _BadNumber as exc:
        raise ProtocolError(code, f"{what} payload: {exc}") from None
    except (json.JSONDecodeError, RecursionError) as exc:
        raise ProtocolError(code, f"{what} payload is not valid JSON: {exc}") from None


class _BadNumber(ValueError):
    pass


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise _BadNumber(f"integer with {len(text.lstrip('-'))} digits (at most {MAX_INT_DIGITS})")
    return int(text)


def _parse_float(text: str) -> float:
    if len(text) > 64:
        raise _BadNumber(f"number literal of {len(text)} characters")
    v = float(text)
    if not math.isfinite(v):
        raise _BadNumber(f"{text} is not a finite number")
    return v


def _no_constant(name: str) -> Any:
    raise _BadNumber(f"{name} is not a number JSON allows")


# --------------------------------------------------------------------------- fields
Check = Callable[[str, Any], Any]


def _fail(field: str, expected: str, value: Any) -> ProtocolError:
    shown = repr(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return ProtocolError(ErrorCode.BAD_CONFIG, f"{field} must be {expected}, got {shown}")


def number(lo: float, hi: float) -> Check:
    def check(field: str, v: Any) -> float:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not lo <= v <= hi:
            raise _fail(field, f"a number in [{lo:g}, {hi:g}]", v)
        return float(v)
    return check


def boolean() -> Check:
    def check(field: str, v: Any) -> bool:
        if not isinstance(v, bool):
            raise _fail(field, "true or false", v)
        return v
    return check


def text(max_len: int = MAX_STRING) -> Check:
    def check(field: str, v: Any) -> str:
        if not isinstance(v, str) or len(v) > max_len or not v.isprintable():
            raise _fail(field, f"printable text of at most {max_len} characters", v)
        return v
    return check


def class_list() -> Check:
    """``keep``: null (every body part) or up to 64 class names / ids; ids are checked against the
    engine's classes later (:func:`class_index`), when the engine is known."""
    def check(field: str, v: Any) -> list[str] | None:
        if v is None:
            return None
        if not isinstance(v, list) or len(v) > MAX_ITEMS:
            raise _fail(field, f"null or a list of at most {MAX_ITEMS} class names or ids", v)
        out = []
        for k in v:
            if isinstance(k, int) and not isinstance(k, bool) and 0 <= k < 10_000:
                out.append(str(k))
            elif isinstance(k, str) and len(k) <= MAX_NAME and k.isprintable():
                out.append(k)
            else:
                raise _fail(field, f"a list of class names (at most {MAX_NAME} characters) or ids", k)
        return out
    return check


def option_map() -> Check:
    """``engine_options``: a flat object of scalars (engine-specific: URLs, thread counts, flags)."""
    def check(field: str, v: Any) -> dict[str, Any]:
        if not isinstance(v, dict) or len(v) > MAX_ITEMS:
            raise _fail(field, f"an object of at most {MAX_ITEMS} settings", v)
        for key, val in v.items():
            if not _OPTION_KEY.fullmatch(key):
                raise _fail(f"{field} key", "a name of letters, digits, _ . - (at most 64)", key)
            if val is None or isinstance(val, (bool, int)):
                continue
            if isinstance(val, float) and math.isfinite(val):
                continue
            if isinstance(val, str) and len(val) <= MAX_STRING and val.isprintable():
                continue
            raise _fail(f"{field}.{key}", "a number, true/false, null or text", val)
        return dict(v)
    return check


@dataclass(frozen=True)
class Field:
    """One row of a schema: the check, and how a text value (HTTP form field, query) is read."""

    name: str
    kind: str  # "number", "bool", "text", "classes", "options": how from_text reads a string
    check: Check
    help: str = ""

    def validate(self, value: Any) -> Any:
        return self.check(self.name, value)

    def from_text(self, value: str) -> Any:
        """A form/query string → the same checked value (``soft=yes``, ``threshold=0.4``, ``keep=Hair,Face``)."""
        s = value.strip()
        if self.kind == "bool":
            if s.lower() in _TRUE:
                return True
            if s.lower() in _FALSE:
                return False
            raise _fail(self.name, "true or false", value)
        if self.kind == "number":
            try:
                v = float(s) if len(s) <= 64 else math.nan
            except ValueError:
                v = math.nan
            if not math.isfinite(v):
                raise _fail(self.name, "a number", value)
            return self.validate(v)
        if self.kind == "classes":
            return self.validate([k.strip() for k in s.split(",") if k.strip()][: MAX_ITEMS + 1])
        if self.kind == "text":
            return self.validate(value)
        raise _fail(self.name, "set by a JSON CONFIG, not as text", value)


_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


#: Every CONFIG key, its type and range (the one table; StreamConfig holds the defaults).
CONFIG_SCHEMA: dict[str, Field] = {f.name: f for f in (
    Field("keep", "classes", class_list(), "class names or ids making the alpha; null = every body part"),
    Field("threshold", "number", number(0.0, 1.0), "hard-edge cut"),
    Field("soft", "bool", boolean(), "soft alpha (probabilities) or a hard cut"),
    Field("smoothing", "number", number(0.0, 0.99), "temporal EMA weight of the past"),
    Field("motion", "bool", boolean(), "motion-compensate held masks"),
    Field("predict_frames", "number", number(0.0, 10.0), "frames the mask is moved ahead along the motion"),
    Field("refine", "bool", boolean(), "edge refinement with the full-resolution frame"),
    Field("min_island", "number", number(0.0, 0.1),
          "drop mask blobs below this fraction of the frame touching nothing larger; 0 = off"),
    Field("engine_options", "options", option_map(), "engine-specific settings (flat: names to scalars)"),
)}

#: Every HELLO key.
HELLO_SCHEMA: dict[str, Field] = {f.name: f for f in (
    Field("client", "text", text(MAX_NAME), "the client's name, for the server log"),
)}


def validate_object(obj: Any, schema: dict[str, Field], what: str,
                    code: ErrorCode = ErrorCode.BAD_CONFIG) -> dict[str, Any]:
    """Check a decoded JSON object against a schema; unknown keys are refused.  Returns the checked values."""
    if not isinstance(obj, dict):
        raise ProtocolError(code, f"{what} payload must be a JSON object, got {type(obj).__name__}")
    unknown = sorted(set(obj) - set(schema))
    if unknown:
        shown = ", ".join(repr(k[:40]) for k in unknown[:5])
        raise ProtocolError(code, f"unknown {what} setting(s): {shown}; known: {', '.join(schema)}")
    out = {}
    for key, value in obj.items():
        try:
            out[key] = schema[key].validate(value)
        except ProtocolError as exc:
            raise ProtocolError(code, exc.message) from None
    return out


def validate_hello(obj: Any) -> dict[str, Any]:
    return validate_object(obj, HELLO_SCHEMA, "HELLO", ErrorCode.MALFORMED)


def class_index(key: str, class_count: int) -> int | None:
    """A ``keep`` entry as a class id: ASCII decimal below ``class_count``; None if it is not an id."""
    k = key.strip()
    if _CLASS_ID.fullmatch(k) is None:
        return None
    i = int(k)
    return i if i < class_count else None


def is_class_id_text(key: str) -> bool:
    return _CLASS_ID.fullmatch(key.strip()) is not None


__all__: Sequence[str] = (
    "CONFIG_SCHEMA", "HELLO_SCHEMA", "MAX_JSON_BYTES", "MAX_JSON_DEPTH", "MAX_REQUEST_JSON_BYTES", "Field",
    "class_index", "parse_json", "validate_hello", "validate_object",
)
