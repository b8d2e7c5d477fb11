"""The transcript format and matcher themselves: what passes, what fails and why."""

from __future__ import annotations

import pytest

from tests.transcripts.script import (
    TranscriptError,
    match,
    parse_fragment,
    parse_transcript,
    substitute,
)


def one(xml: str) -> object:
    (element,) = parse_fragment(xml)
    return element


def check(expected: str, got: str, captured: dict[str, str] | None = None) -> str | None:
    (want,) = parse_fragment(expected)
    (have,) = parse_fragment(got)
    return match(want, have, {} if captured is None else captured)


def test_attributes_children_and_text_are_matched() -> None:
    assert check("<message to='a@b'/>", "<message to='a@b' id='1'><body>x</body></message>") is None
    assert check("<message to='a@b'/>", "<message to='c@b'/>") is not None
    assert check("<message><body>hi</body></message>", "<message><body>ho</body></message>")
    assert check("<message><body/></message>", "<message><subject>x</subject></message>")
    assert check("<presence/>", "<message/>") is not None
    assert check("<x xmlns='urn:a'/>", "<x xmlns='urn:b'/>") is not None


def test_children_match_in_order_and_none_closes_the_list() -> None:
    got = "<m><a/><b/><c/></m>"
    assert check("<m><a/><c/></m>", got) is None
    assert check("<m><c/><a/></m>", got) is not None
    assert check("<m><a/><b/><none xmlns='urn:heron:transcript'/></m>", got) is not None
    assert check("<m><a/><b/><c/><none xmlns='urn:heron:transcript'/></m>", got) is None


def test_wildcards_absence_and_captures() -> None:
    assert check("<iq id='{*}'/>", "<iq id='7'/>") is None
    assert check("<iq id='{*}'/>", "<iq/>") is not None
    assert check("<iq from='{absent}'/>", "<iq from='x'/>") is not None
    captured: dict[str, str] = {}
    assert (
        check(
            "<iq id='{=qid}'><q xmlns='u' n='{=n}'/></iq>",
            "<iq id='9'><q xmlns='u' n='3'/></iq>",
            captured,
        )
        is None
    )
    assert captured == {"qid": "9", "n": "3"}
    assert substitute("<iq id='${qid}'/>", captured) == "<iq id='9'/>"
    with pytest.raises(TranscriptError):
        substitute("${nobody}", captured)


def test_the_file_format() -> None:
    script = parse_transcript(
        '# Title here\nconfig: {"a": 1}\n[al] al@localhost/r\n\nal connects\nal sends:\n'
        "    <presence/>\n\n    <message/>\nal receives nothing\n"
    )
    assert script.title == "Title here"
    assert script.config == {"a": 1}
    assert script.clients == {"al": "al@localhost/r"}
    assert [(s.verb, s.line) for s in script.steps] == [
        ("connects", 5),
        ("sends", 6),
        ("nothing", 10),
    ]
    assert len(parse_fragment(script.steps[1].xml)) == 2
    with pytest.raises(TranscriptError):
        parse_transcript("[al] al@localhost/r\nbob connects\n")
    with pytest.raises(TranscriptError):
        parse_transcript("[al] al@localhost/r\nal sends:\nal connects\n")
