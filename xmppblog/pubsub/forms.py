# SPDX-License-Identifier: AGPL-3.0-or-later
"""XEP-0004 data forms as plain element trees (adapter layer)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable

from ..core import errors
from ..protocol import NS_DATA

X = f"{{{NS_DATA}}}x"


def parse(x: ET.Element | None) -> tuple[str, dict[str, list[str]]]:
    """(form type attribute, {var: values}) of a jabber:x:data form.

    Raises:
        BadRequest: if the element is not a data form.
    """
    if x is None or x.tag != X:
        raise errors.BadRequest("expected a jabber:x:data form")
    values: dict[str, list[str]] = {}
    for field in x.findall(f"{{{NS_DATA}}}field"):
        var = field.get("var")
        if not var:
            continue
        values[var] = [v.text or "" for v in field.findall(f"{{{NS_DATA}}}value")]
    return x.get("type", ""), values


def single(values: dict[str, list[str]], var: str) -> str | None:
    v = values.get(var)
    return v[0] if v else None


_DECIMAL = re.compile(r"[0-9]{1,9}")


def integer(value: str, what: str) -> int:
    """A non-negative decimal written in ASCII digits (0..999999999): `int()` would also take
    '١٢' or a thousand digits. Raises BadRequest otherwise."""
    value = value.strip()
    if not _DECIMAL.fullmatch(value):
        raise errors.BadRequest(f"{what} must be a number from 0 to 999999999")
    return int(value)


def boolean(value: str, var: str) -> bool:
    if value in ("1", "true"):
        return True
    if value in ("0", "false"):
        return False
    raise errors.InvalidOptions(f"{var} must be a boolean, got {value[:32]!r}")


def field_type(var: str, value: object = None, options: bool = False) -> str:
    """The XEP-0004 type of a field we send that names none. The default of a field
    without `type` is text-single (XEP-0004 §3.3), but wokkel, and so Libervia, fails on
    such fields: every field we send carries its type."""
    if var == "FORM_TYPE":
        return "hidden"  # XEP-0068 §3
    if isinstance(value, bool):
        return "boolean"
    if options:
        return "list-single"
    if value is not None and not isinstance(value, (str, int)):
        return "text-multi"
    return "text-single"


class Form:
    """Builds a form element field by field; every field carries its type."""

    def __init__(self, form_type: str = "form", title: str | None = None,
                 instructions: str | None = None) -> None:
        self.el = ET.Element(X, {"type": form_type})
        if title:
            ET.SubElement(self.el, f"{{{NS_DATA}}}title").text = title
        if instructions:
            ET.SubElement(self.el, f"{{{NS_DATA}}}instructions").text = instructions

    def field(self, var: str, value: str | Iterable[str] | bool | int | None = None,
              ftype: str | None = None, label: str | None = None,
              options: Iterable[tuple[str, str]] = ()) -> Form:
        """Adds a field; without `ftype`, the type its value implies (`field_type`)."""
        options = list(options)
        attrs = {"var": var, "type": ftype or field_type(var, value, bool(options))}
        if label:
            attrs["label"] = label
        f = ET.SubElement(self.el, f"{{{NS_DATA}}}field", attrs)
        for opt_value, opt_label in options:
            o = ET.SubElement(f, f"{{{NS_DATA}}}option", {"label": opt_label} if opt_label else {})
            ET.SubElement(o, f"{{{NS_DATA}}}value").text = opt_value
        if value is None:
            return self
        if isinstance(value, bool):
            vals: Iterable[str] = ["true" if value else "false"]
        elif isinstance(value, int):
            vals = [str(value)]
        elif isinstance(value, str):
            vals = [value]
        else:
            vals = value
        for v in vals:
            ET.SubElement(f, f"{{{NS_DATA}}}value").text = v
        return self
