"""How Go's fmt and strconv print values, for messages that must read exactly as kube-apiserver writes them.

field.Error renders a bad value with `%v` for numbers and booleans, `%q` for strings and JSON for the rest
(`Invalid value: 0`, `Invalid value: "Foo"`, `Duplicate value: {"type":"Ready"}`); kube's JSONPath printer
writes floats with `%v` too. Python's repr differs for floats (`1e+06` in Go is `1000000.0` in Python) and
quoting, hence these few functions.
"""

from __future__ import annotations

import json
import math
from typing import Any


def go_float(number: float) -> str:
    """fmt's %v of a float64: strconv 'g' with the shortest digits, exponent form when exp < -4 or exp >= 6."""
    if number == 0:
        return "0"
    if math.isinf(number) or math.isnan(number):
        return "NaN" if math.isnan(number) else ("+Inf" if number > 0 else "-Inf")
    digits_part, _, shortest_exponent = repr(abs(number)).partition("e")
    whole, _, fraction = digits_part.partition(".")
    digits = (whole + fraction).lstrip("0")
    leading = len(whole + fraction) - len(digits)
    exponent = len(whole) - 1 - leading + (int(shortest_exponent) if shortest_exponent else 0)
    digits = digits.rstrip("0") or "0"
    sign = "-" if number < 0 else ""
    if exponent < -4 or exponent >= 6:
        body = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{body}e{'-' if exponent < 0 else '+'}{abs(exponent):02d}"
    if exponent >= len(digits) - 1:
        return sign + digits + "0" * (exponent - len(digits) + 1)
    if exponent >= 0:
        return sign + digits[: exponent + 1] + "." + digits[exponent + 1 :]
    return sign + "0." + "0" * (-exponent - 1) + digits


def go_quote(text: str) -> str:
    """strconv.Quote: a double-quoted Go string literal."""
    out = ['"']
    for char in text:
        code = ord(char)
        if char in ('"', "\\"):
            out.append("\\" + char)
        elif char == "\n":
            out.append("\\n")
        elif char == "\t":
            out.append("\\t")
        elif char == "\r":
            out.append("\\r")
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif not char.isprintable() and code > 0x7F:
            out.append(f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)


def go_value(value: Any) -> str:
    """How field.Error.ErrorBody renders a bad value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return go_float(value)
    if isinstance(value, str):
        return go_quote(value)
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
