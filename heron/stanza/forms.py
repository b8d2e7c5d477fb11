"""XEP-0004 data forms: the shapes Heron writes (forms, results, submissions with their
XEP-0068 FORM_TYPE) and reads (a submission's values)."""

from __future__ import annotations

from collections.abc import Iterable

from heron import ns
from heron.stanza.errors import StanzaCondition, StanzaError
from heron.xmlstream.element import Element


def data_form(type_: str, form_type: str | None = None, parent: Element | None = None) -> Element:
    """A data form (XEP-0004 ``<x/>``) of ``type_`` (form, result, submit), under
    ``parent`` when given, starting with its hidden FORM_TYPE field when there is one."""
    attrs = {"type": type_}
    form = (
        Element("x", ns.DATA_FORMS, attrs)
        if parent is None
        else parent.add("x", ns.DATA_FORMS, attrs)
    )
    if form_type is not None:
        add_field(form, "FORM_TYPE", [form_type], type_="hidden")
    return form


def add_field(
    form: Element,
    var: str,
    values: Iterable[str] = (),
    *,
    type_: str | None = None,
    label: str = "",
    options: Iterable[str] = (),
) -> Element:
    """A ``<field/>`` of ``form`` with its options and values, in the order XEP-0004 §3.2
    shows them."""
    attrs = {"var": var}
    if type_ is not None:
        attrs["type"] = type_
    if label:
        attrs["label"] = label
    field = form.add("field", ns.DATA_FORMS, attrs)
    for option in options:
        field.add("option", ns.DATA_FORMS).add("value", ns.DATA_FORMS, text=option)
    for value in values:
        field.add("value", ns.DATA_FORMS, text=value)
    return field


def submitted_values(form: Element) -> dict[str, list[str]]:
    """A submitted form's values by field (FORM_TYPE left out); ``bad-request`` when it is
    not a submission."""
    if form.tag != "x" or form.ns != ns.DATA_FORMS or form.attrs.get("type", "submit") != "submit":
        raise StanzaError(StanzaCondition.BAD_REQUEST, "expected a submitted jabber:x:data form")
    values: dict[str, list[str]] = {}
    for field in form.find_all("field", ns.DATA_FORMS):
        var = field.attrs.get("var", "")
        if var and var != "FORM_TYPE":
            values[var] = [v.text for v in field.find_all("value", ns.DATA_FORMS)]
    return values


def form_type(form: Element) -> str | None:
    """The form's FORM_TYPE, if it has one."""
    for field in form.find_all("field", ns.DATA_FORMS):
        if field.attrs.get("var") == "FORM_TYPE":
            return field.child_text("value", ns.DATA_FORMS)
    return None
