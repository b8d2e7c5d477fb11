"""XEP-0004 data forms as Heron writes and reads them."""

from __future__ import annotations

import pytest

from heron import ns
from heron.stanza import StanzaError
from heron.stanza.forms import add_field, data_form, form_type, submitted_values
from heron.xmlstream import serialize
from heron.xmlstream.element import Element


def test_a_form_starts_with_its_hidden_form_type() -> None:
    query = Element("query", ns.DISCO_INFO)
    form = data_form("result", "urn:example:t", parent=query)
    add_field(form, "colour", ["red"], type_="list-single", label="Colour", options=["red", "blue"])
    assert query.first() is form
    assert serialize(form) == (
        '<x xmlns="jabber:x:data" type="result">'
        '<field var="FORM_TYPE" type="hidden"><value>urn:example:t</value></field>'
        '<field var="colour" type="list-single" label="Colour">'
        "<option><value>red</value></option><option><value>blue</value></option>"
        "<value>red</value></field></x>"
    )
    assert form_type(form) == "urn:example:t"


def test_submitted_values_leave_form_type_out() -> None:
    form = data_form("submit", "urn:example:t")
    add_field(form, "many", ["a", "b"])
    add_field(form, "none")
    assert submitted_values(form) == {"many": ["a", "b"], "none": []}
    assert form_type(data_form("submit")) is None


def test_only_a_submission_is_read() -> None:
    with pytest.raises(StanzaError):
        submitted_values(data_form("form"))
