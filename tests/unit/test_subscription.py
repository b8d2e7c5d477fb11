"""RFC 6121 Appendix A subscription tables, row by row, on the pure transition functions."""

from __future__ import annotations

import pytest

from heron.modules.roster.store import RosterItem
from heron.modules.roster.subscription import inbound, outbound

# (subscription, ask, pending_in) before → after, or None for "no state change".
State = tuple[str, bool, bool]

OUTBOUND: list[tuple[str, State, State | None]] = [
    ("subscribe", ("none", False, False), ("none", True, False)),
    ("subscribe", ("none", False, True), ("none", True, True)),
    ("subscribe", ("from", False, False), ("from", True, False)),
    ("subscribe", ("to", False, False), None),
    ("subscribe", ("both", False, False), None),
    ("unsubscribe", ("none", True, False), ("none", False, False)),
    ("unsubscribe", ("to", False, False), ("none", False, False)),
    ("unsubscribe", ("both", False, False), ("from", False, False)),
    ("unsubscribe", ("none", False, False), None),
    ("subscribed", ("none", False, True), ("from", False, False)),
    ("subscribed", ("to", False, True), ("both", False, False)),
    ("subscribed", ("from", False, False), None),
    ("unsubscribed", ("from", False, False), ("none", False, False)),
    ("unsubscribed", ("both", False, False), ("to", False, False)),
    ("unsubscribed", ("none", False, True), ("none", False, False)),
    ("unsubscribed", ("none", False, False), None),
]

INBOUND: list[tuple[str, State, State | None]] = [
    ("subscribe", ("none", False, False), ("none", False, True)),
    ("subscribe", ("to", False, False), ("to", False, True)),
    ("subscribe", ("from", False, False), None),
    ("subscribe", ("both", False, False), None),
    ("subscribe", ("none", False, True), None),
    ("subscribed", ("none", True, False), ("to", False, False)),
    ("subscribed", ("from", True, False), ("both", False, False)),
    ("subscribed", ("none", False, False), None),
    ("subscribed", ("to", False, False), None),
    ("unsubscribe", ("from", False, False), ("none", False, False)),
    ("unsubscribe", ("both", False, False), ("to", False, False)),
    ("unsubscribe", ("none", False, True), ("none", False, False)),
    ("unsubscribe", ("to", False, False), None),
    ("unsubscribed", ("to", False, False), ("none", False, False)),
    ("unsubscribed", ("both", False, False), ("from", False, False)),
    ("unsubscribed", ("none", True, False), ("none", False, False)),
    ("unsubscribed", ("from", False, False), None),
]


def item(state: State) -> RosterItem:
    sub, ask, pending_in = state
    return RosterItem("contact@example.org", subscription=sub, ask=ask, pending_in=pending_in)


def state_of(result: RosterItem | None) -> State | None:
    return None if result is None else (result.subscription, result.ask, result.pending_in)


@pytest.mark.parametrize(("type_", "before", "after"), OUTBOUND)
def test_outbound_table(type_: str, before: State, after: State | None) -> None:
    assert state_of(outbound(item(before), type_)) == after


@pytest.mark.parametrize(("type_", "before", "after"), INBOUND)
def test_inbound_table(type_: str, before: State, after: State | None) -> None:
    assert state_of(inbound(item(before), type_)) == after


def test_pre_approval_turns_a_later_request_into_from() -> None:
    approved = outbound(item(("none", False, False)), "subscribed")
    assert approved is not None
    assert approved.approved
    assert state_of(inbound(approved, "subscribe")) == ("from", False, False)
