"""RFC 6121 §3 subscription state transitions, as pure functions over a roster item.

State = (subscription, ask (pending out), pending_in). Each function returns the new item, or
None when the stanza must not change anything (and, for outbound, not be routed; for inbound,
not be delivered), following the RFC's tables (Appendix A.2 and A.3).
"""

from __future__ import annotations

from dataclasses import replace

from heron.modules.roster.store import RosterItem

HAS_TO = frozenset({"to", "both"})
HAS_FROM = frozenset({"from", "both"})


def outbound(item: RosterItem, type_: str) -> RosterItem | None:
    """The user sends ``type_`` to the contact (RFC 6121 A.2)."""
    sub = item.subscription
    if type_ == "subscribe":
        if sub in HAS_TO:
            return None  # already subscribed: nothing changes
        return replace(item, ask=True)
    if type_ == "unsubscribe":
        if sub not in HAS_TO and not item.ask:
            return None
        return replace(item, subscription={"to": "none", "both": "from"}.get(sub, sub), ask=False)
    if type_ == "subscribed":
        if sub in HAS_FROM:
            return None
        if not item.pending_in:
            return replace(item, approved=True)  # pre-approval (§3.4)
        new = {"none": "from", "to": "both"}[sub]
        return replace(item, subscription=new, pending_in=False)
    if type_ == "unsubscribed":
        if sub not in HAS_FROM and not item.pending_in and not item.approved:
            return None
        new = {"from": "none", "both": "to"}.get(sub, sub)
        return replace(item, subscription=new, pending_in=False, approved=False)
    return None


def inbound(item: RosterItem, type_: str) -> RosterItem | None:
    """The contact's ``type_`` arrives for the user (RFC 6121 A.3)."""
    sub = item.subscription
    if type_ == "subscribe":
        if sub in HAS_FROM or item.pending_in:
            return None
        if item.approved:
            new = {"none": "from", "to": "both"}[sub]
            return replace(item, subscription=new, approved=False)
        return replace(item, pending_in=True)
    if type_ == "subscribed":
        if not item.ask:
            return None  # unsolicited: ignored (§3.1.6)
        return replace(item, subscription={"none": "to", "from": "both"}.get(sub, sub), ask=False)
    if type_ == "unsubscribe":
        if sub not in HAS_FROM and not item.pending_in:
            return None
        new = {"from": "none", "both": "to"}.get(sub, sub)
        return replace(item, subscription=new, pending_in=False)
    if type_ == "unsubscribed":
        if sub not in HAS_TO and not item.ask:
            return None
        return replace(item, subscription={"to": "none", "both": "from"}.get(sub, sub), ask=False)
    return None
