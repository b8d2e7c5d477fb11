"""JID parsing and normalisation (RFC 7622)."""

from __future__ import annotations

import precis_i18n
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from heron.jid import JID, InvalidJID, normalize_localpart, normalize_resource

# RFC 7622 §3.5.1, with the parts each example must normalise to.
VALID = [
    ("juliet@example.com", ("juliet", "example.com", None)),
    ("juliet@example.com/foo", ("juliet", "example.com", "foo")),
    ("juliet@example.com/foo bar", ("juliet", "example.com", "foo bar")),
    ("juliet@example.com/foo@bar", ("juliet", "example.com", "foo@bar")),
    ("foo\\20bar@example.com", ("foo\\20bar", "example.com", None)),
    ("fussball@example.com", ("fussball", "example.com", None)),
    ("fu\u00dfball@example.com", ("fu\u00dfball", "example.com", None)),
    ("\u03c0@example.com", ("\u03c0", "example.com", None)),
    ("\u03a3@example.com/foo", ("\u03c3", "example.com", "foo")),
    ("\u03c3@example.com/foo", ("\u03c3", "example.com", "foo")),
    ("\u03c2@example.com/foo", ("\u03c2", "example.com", "foo")),
    ("king@example.com/\u265a", ("king", "example.com", "\u265a")),
    ("example.com", (None, "example.com", None)),
    ("example.com/foobar", (None, "example.com", "foobar")),
    ("a.example.com/b@example.net", (None, "a.example.com", "b@example.net")),
]

# RFC 7622 §3.5.2, plus a few of our own. The RFC's "juliet@example.com/ foo" (leading space
# in the resourcepart) is left out: the OpaqueString profile of RFC 8265 allows it.
INVALID = [
    '"juliet"@example.com',
    "foo bar@example.com",
    "@example.com/",
    "henry\u2163@example.com",
    "\u265a@example.com",
    "juliet@",
    "/foobar",
    "",
    "@example.com",
    "juliet@example.com/",
    "juliet@@example.com",
    "jul<iet@example.com",
    "exa mple.com",
    "example..com",
    ".",
    "[::1",
    "[not-an-ip]",
    "x" * 1024 + "@example.com",
    "example.com/" + "r" * 1024,
    "a" * 64 + ".com",
    "juliet@example.com/foo\x07",
]


@pytest.mark.parametrize(("text", "parts"), VALID)
def test_valid_rfc_examples(text: str, parts: tuple[str | None, str, str | None]) -> None:
    jid = JID.parse(text)
    assert (jid.local, jid.domain, jid.resource) == parts


@pytest.mark.parametrize("text", INVALID)
def test_invalid_examples(text: str) -> None:
    with pytest.raises(InvalidJID):
        JID.parse(text)


def test_local_and_domain_fold_case_resource_keeps_it() -> None:
    jid = JID.parse("Juliet@Example.COM/Balcony")
    assert str(jid) == "juliet@example.com/Balcony"
    assert JID.parse("JULIET@example.com/balcony") != jid


def test_domain_forms() -> None:
    assert JID.parse("example.com.").domain == "example.com"
    assert JID.parse("[0:0::1]").domain == "[::1]"
    assert JID.parse("127.0.0.1").domain == "127.0.0.1"
    assert JID.parse("x@B\u00dcCHER.de").domain == "b\u00fccher.de"
    assert JID.parse("\uff45\uff58\u3002com").domain == "ex.com"


def test_parts_at_the_length_limit() -> None:
    assert JID.parse("x" * 1023 + "@example.com").local == "x" * 1023
    with pytest.raises(InvalidJID):
        JID.parse("\u00e9" * 512 + "@example.com")  # 1024 bytes


def test_make_bare_and_with_resource() -> None:
    jid = JID.make("Romeo", "Example.NET", "Orchard")
    assert jid == JID("romeo", "example.net", "Orchard")
    assert jid.bare == JID("romeo", "example.net")
    assert jid.bare.is_bare
    assert not jid.is_bare
    bare = jid.bare
    assert bare.bare is bare
    assert jid.bare.with_resource("\u00a0x") == JID("romeo", "example.net", " x")
    assert str(JID.make(None, "example.net")) == "example.net"
    with pytest.raises(InvalidJID):
        JID.make("", "example.net")
    with pytest.raises(InvalidJID):
        jid.with_resource("")


def test_jids_are_hashable_values() -> None:
    assert {JID.parse("a@b/c"), JID.parse("A@B/c")} == {JID("a", "b", "c")}


def test_invalid_jid_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="localpart"):
        normalize_localpart("a b")


_parts = st.text(min_size=1, max_size=12)
_domains = st.sampled_from(["example.com", "EXAMPLE.org.", "b\u00fccher.de", "[::1]", "localhost"])


@given(local=st.none() | _parts, domain=_domains, resource=st.none() | _parts)
def test_parse_is_idempotent(local: str | None, domain: str, resource: str | None) -> None:
    text = domain if local is None else f"{local}@{domain}"
    if resource is not None:
        text += f"/{resource}"
    try:
        jid = JID.parse(text)
    except InvalidJID:
        assume(False)
        raise
    assert JID.parse(str(jid)) == jid


_ascii = st.text(st.characters(min_codepoint=0, max_codepoint=0x7F), min_size=1, max_size=20)
_USERNAME = precis_i18n.get_profile("UsernameCaseMapped")
_OPAQUE = precis_i18n.get_profile("OpaqueString")


@given(_ascii)
def test_ascii_fast_paths_agree_with_precis(value: str) -> None:
    try:
        expected: str | None = _OPAQUE.enforce(value)
    except UnicodeError:
        expected = None
    try:
        assert normalize_resource(value) == expected
    except InvalidJID:
        assert expected is None
    try:
        expected = _USERNAME.enforce(value)
        if set(expected) & set("\"&'/:<>@"):
            expected = None
    except UnicodeError:
        expected = None
    try:
        assert normalize_localpart(value) == expected
    except InvalidJID:
        assert expected is None


def test_an_account_address_is_user_at_domain_and_nothing_else() -> None:
    assert JID.parse_account("Alice@Example.org") == JID("alice", "example.org")
    for text, why in (
        ("example.org", "not an account address"),
        ("alice@example.org/phone", "not an account address"),
        ("@example.org", "not a valid JID"),
    ):
        with pytest.raises(InvalidJID, match=why):
            JID.parse_account(text)


@pytest.mark.parametrize(
    ("text", "salvaged"),
    [
        ("room@conference.example.org/bad\u0000nick", "room@conference.example.org"),
        ("bad user@example.org/x", "example.org"),
        ("@@@", None),
    ],
)
def test_what_is_valid_of_a_malformed_address(text: str, salvaged: str | None) -> None:
    assert JID.salvage(text) == salvaged
