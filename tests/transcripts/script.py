"""Conversation tests as files: the format, its parser and the stanza matcher.

A transcript is a text file read top to bottom::

    # A comment; the first comment line is the transcript's title.
    config: {"hosts": {"localhost": {"modules": {"muc": true}}}}
    [alice] alice@localhost/phone
    [bob] bob@localhost/laptop

    alice connects
    alice sends:
        <presence/>
    alice receives:
        <presence from="${alice}" to="${alice}"/>
    bob receives nothing
    alice disconnects

- ``[name] jid`` declares a client; its account is created with a fixed password
  (``transcript-password``). ``name connects`` logs it in over STARTTLS (SASL PLAIN, bind
  to the JID's resource); ``name opens a stream`` stops after STARTTLS, before login, the
  stream's ``<features/>`` being the next thing it receives.
- ``name sends:`` is followed by indented XML: one or more stanzas, sent in order.
- ``name receives:`` is followed by indented stanzas that must be the very next stanzas the
  client gets, in this order; ``name receives (any order):`` accepts them in any order.
- ``name receives nothing``: after a ping round trip to the server, nothing else arrived.
- ``config:`` (JSON, before the first client) overrides the server's configuration.

Matching an expected element against a received one: same name and namespace; every
expected attribute present with the same value; the expected text (when it has any) equal
after stripping; every expected child matched by a distinct received child, in order.
Received extras are allowed, except where ``{none}`` says so. Values may use:

- ``${name}`` (a client's full JID), ``${name.bare}`` (its bare JID), ``${var}`` (a captured
  value), substituted in sent and expected XML alike;
- ``{*}``: any value, the attribute only has to be present;
- ``{absent}``: the attribute must not be there;
- ``{=var}``: any value, captured as ``var`` for later lines.
- ``<none xmlns='urn:heron:transcript'/>`` as an expected child: the received element has no
  child elements beyond those matched before it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from heron.xmlstream.element import Element
from heron.xmlstream.parser import ElementReceived, StreamParser
from heron.xmlstream.serializer import serialize

TRANSCRIPT_NS = "urn:heron:transcript"
_CLIENT = re.compile(r"^\[(?P<name>[\w-]+)\]\s+(?P<jid>\S+)$")
_STEP = re.compile(
    r"^(?P<name>[\w-]+) (?P<verb>sends:|receives:|receives \(any order\):|receives nothing"
    r"|connects|opens a stream|disconnects)$"
)
_VAR = re.compile(r"\$\{([\w.-]+)\}")
_CAPTURE = re.compile(r"^\{=([\w-]+)\}$")


class TranscriptError(Exception):
    """The transcript file itself is wrong (not a failure of the server)."""


class Mismatch(AssertionError):
    """The server did not do what the transcript says."""


@dataclass(frozen=True, slots=True)
class Step:
    line: int
    client: str
    verb: str  # sends, receives, receives-any, nothing, connects, opens, disconnects
    xml: str = ""


@dataclass(slots=True)
class Transcript:
    title: str
    clients: dict[str, str] = field(default_factory=dict)  # name → full JID
    config: dict[str, object] = field(default_factory=dict)
    steps: list[Step] = field(default_factory=list)


_VERBS = {
    "sends:": "sends",
    "receives:": "receives",
    "receives (any order):": "receives-any",
    "receives nothing": "nothing",
    "connects": "connects",
    "opens a stream": "opens",
    "disconnects": "disconnects",
}


def parse_transcript(text: str, source: str = "<transcript>") -> Transcript:
    lines = text.splitlines()
    script = Transcript(title=source)
    titled = False
    index = 0
    while index < len(lines):
        raw = lines[index]
        index += 1
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            if not titled:
                script.title, titled = line.lstrip("# ").strip(), True
            continue
        where = f"{source}:{index}"
        if line.startswith("config:"):
            try:
                loaded = json.loads(line.removeprefix("config:"))
            except json.JSONDecodeError as exc:
                raise TranscriptError(f"{where}: config is not JSON: {exc}") from exc
            if not isinstance(loaded, dict):
                raise TranscriptError(f"{where}: config must be a JSON object")
            script.config.update(loaded)
            continue
        client = _CLIENT.match(line)
        if client:
            script.clients[client["name"]] = client["jid"]
            continue
        step = _STEP.match(line)
        if step is None:
            raise TranscriptError(f"{where}: cannot read {line!r}")
        if step["name"] not in script.clients:
            raise TranscriptError(f"{where}: unknown client {step['name']!r}")
        verb = _VERBS[step["verb"]]
        at_line = index
        block: list[str] = []
        if verb in ("sends", "receives", "receives-any"):
            while index < len(lines) and (not lines[index].strip() or lines[index][:1].isspace()):
                block.append(lines[index])
                index += 1
            if not "".join(block).strip():
                raise TranscriptError(f"{where}: {step['verb']} needs indented XML below it")
        script.steps.append(Step(at_line, step["name"], verb, "\n".join(block)))
    return script


def load_transcript(path: Path) -> Transcript:
    return parse_transcript(path.read_text(encoding="utf-8"), path.name)


def substitute(text: str, variables: dict[str, str]) -> str:
    def one(match: re.Match[str]) -> str:
        name = match[1]
        if name not in variables:
            raise TranscriptError(f"${{{name}}} is not known here")
        return variables[name]

    return _VAR.sub(one, text)


def parse_fragment(xml: str) -> list[Element]:
    """The top-level elements of a piece of XML, in the jabber:client namespace."""
    parser = StreamParser()
    events = parser.feed(
        b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"
        + xml.encode()
    )
    return [e.element for e in events if isinstance(e, ElementReceived)]


def show(el: Element) -> str:
    return serialize(el, "jabber:client")


def _text(el: Element) -> str:
    return "".join(c for c in el.children if isinstance(c, str)).strip()


def match(expected: Element, got: Element, captured: dict[str, str]) -> str | None:
    """None when ``got`` satisfies ``expected`` (filling ``captured``), else the reason."""
    if (expected.tag, expected.ns) != (got.tag, got.ns):
        return f"expected <{expected.tag} xmlns='{expected.ns}'>, got <{got.tag} xmlns='{got.ns}'>"
    found: dict[str, str] = {}
    for key, want in expected.attrs.items():
        have = got.attrs.get(key)
        if want == "{absent}":
            if have is not None:
                return f"<{got.tag}> has {key}={have!r}, expected none"
            continue
        if have is None:
            return f"<{got.tag}> lacks {key} (expected {want!r})"
        capture = _CAPTURE.match(want)
        if capture:
            found[capture[1]] = have
        elif want != "{*}" and want != have:
            return f"<{got.tag}> {key}={have!r}, expected {want!r}"
    text = _text(expected)
    if text and text != "{*}" and text != _text(got):
        return f"<{got.tag}> text {_text(got)!r}, expected {text!r}"
    children = list(got.elements())
    at = 0
    for want_child in expected.elements():
        if want_child.ns == TRANSCRIPT_NS and want_child.tag == "none":
            if children[at:]:
                return f"<{got.tag}> has unexpected child <{children[at].tag}>"
            continue
        reasons: list[str] = []
        while at < len(children):
            reason = match(want_child, children[at], found)
            at += 1
            if reason is None:
                break
            reasons.append(reason)
        else:
            detail = "; ".join(reasons) or "no children left"
            return f"<{got.tag}> has no child matching <{want_child.tag}> ({detail})"
    captured.update(found)
    return None
