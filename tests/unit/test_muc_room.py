"""The sans-IO room engine (XEP-0045): who may enter, who may act on whom, what a change
tells the occupants, which history a joiner gets. No sockets, no server: a Room and the
stanzas it returns."""

from __future__ import annotations

import dataclasses

import pytest

from heron import ns
from heron.jid import JID
from heron.modules.muc.config import MUC, MUC_OWNER, MUC_USER, OCCUPANT_ID, SID, RoomConfig
from heron.modules.muc.invites import invite as pass_on
from heron.modules.muc.invites import voice_request
from heron.modules.muc.register import release_nick, reserve_nick
from heron.modules.muc.room import Occupant, Room, RoomPolicy
from heron.stanza import StanzaCondition, StanzaError
from heron.timestamps import stamp
from heron.xmlstream.element import Element

ROOM = JID.parse("lounge@conference.example.org")
ALICE = JID.parse("alice@example.org/phone")
ALICE_LAPTOP = JID.parse("alice@example.org/laptop")
BOB = JID.parse("bob@example.org/laptop")
CAROL = JID.parse("carol@example.org/x")
DAVE = JID.parse("dave@elsewhere.example/y")
NOW = 1_000_000.0
C = StanzaCondition


def presence(*, password: str | None = None, **history: str) -> Element:
    el = Element("presence", ns.CLIENT)
    x = el.add("x", MUC)
    if password is not None:
        x.add("password", MUC, text=password)
    if history:
        x.add("history", MUC, history)
    return el


def new_room(**config: object) -> Room:
    """A configured room Alice created and entered as 'Alice'."""
    room = Room.create(ROOM, ALICE, RoomPolicy(max_history=5, secret=b"k"))
    room.join("Alice", ALICE, presence(), now=NOW, created=True)
    room.configure(dataclasses.replace(room.config, **config))  # type: ignore[arg-type]
    return room


def enter(room: Room, nick: str, who: JID, **kw: str) -> list[Element]:
    return room.join(nick, who, presence(**kw), now=NOW)


def refused(condition: StanzaCondition) -> pytest.RaisesContext[StanzaError]:
    return pytest.raises(StanzaError, match=f"^{condition}")


def codes(el: Element) -> set[str]:
    x = el.find("x", MUC_USER)
    return {s.attrs["code"] for s in x.find_all("status", MUC_USER)} if x is not None else set()


def item(el: Element) -> dict[str, str]:
    x = el.find("x", MUC_USER)
    found = x.find("item", MUC_USER) if x is not None else None
    assert found is not None
    return found.attrs


def to(els: list[Element], who: JID) -> list[Element]:
    return [el for el in els if el.attrs.get("to") == str(who)]


def occupant(room: Room, who: JID) -> Occupant:
    found = room.occupant(who)
    assert found is not None
    return found


def say(room: Room, who: JID, body: str, now: float = NOW) -> list[Element]:
    el = Element("message", ns.CLIENT, {"type": "groupchat"})
    el.add("body", ns.CLIENT, text=body)
    message, _ = room.groupchat(occupant(room, who), el, now)
    return room.publish(message, now)


# --- joins --------------------------------------------------------------------------
def test_the_creator_owns_a_new_room_and_hears_110_and_201_then_the_subject() -> None:
    room = Room.create(ROOM, ALICE, RoomPolicy(), locked=True)
    out = room.join("Alice", ALICE, presence(), now=NOW, created=True, logged=True)
    own, subject = out
    assert own.attrs["from"] == f"{ROOM}/Alice"
    assert {"110", "201", "170"} <= codes(own)
    assert item(own) == {"affiliation": "owner", "role": "moderator", "jid": str(ALICE)}
    assert own.find("occupant-id", OCCUPANT_ID) is not None
    assert subject.find("subject", ns.CLIENT) is not None  # §7.2.15: even when empty
    assert subject.attrs["to"] == str(ALICE)


def test_a_locked_room_admits_only_its_owner() -> None:
    room = Room.create(ROOM, ALICE, RoomPolicy(), locked=True)
    room.join("Alice", ALICE, presence(), now=NOW, created=True)
    with refused(C.ITEM_NOT_FOUND):
        enter(room, "Bob", BOB)
    room.configure(room.config)  # the instant room of §10.1.2
    assert not room.locked
    enter(room, "Bob", BOB)


def test_a_joiner_sees_everyone_first_then_everyone_sees_the_joiner() -> None:
    room = new_room()
    out = enter(room, "Bob", BOB)
    assert [(el.attrs["from"], el.attrs["to"]) for el in out[:3]] == [
        (f"{ROOM}/Alice", str(BOB)),
        (f"{ROOM}/Bob", str(ALICE)),
        (f"{ROOM}/Bob", str(BOB)),
    ]
    assert codes(out[2]) == {"110"}
    # Semi-anonymous: the moderator sees Bob's real JID, Bob does not see Alice's.
    assert item(out[1])["jid"] == str(BOB)
    assert "jid" not in item(out[0])
    assert item(out[2])["role"] == "participant"


def test_a_non_anonymous_room_says_so_and_shows_real_jids_to_all() -> None:
    room = new_room(whois="anyone")
    out = enter(room, "Bob", BOB)
    assert "100" in codes(out[2])
    assert item(out[0])["jid"] == str(ALICE)


def test_banned_users_may_not_enter_and_a_ban_removes_them_with_301() -> None:
    room = new_room()
    enter(room, "Bob", BOB)
    room.registered[BOB.bare] = "Bob"
    outcome = room.set_affiliation("owner", BOB, "outcast", "spam")
    assert outcome.changed
    assert [codes(el) for el in outcome.send] == [{"301"}, {"301", "110"}]
    assert all(el.attrs["type"] == "unavailable" for el in outcome.send)
    assert item(outcome.send[1])["role"] == "none"
    assert room.occupant(BOB) is None
    assert BOB.bare not in room.registered  # a ban drops the reserved nick
    with refused(C.FORBIDDEN):
        enter(room, "Bob", BOB)


def test_members_only_rooms_admit_members_and_remove_those_who_are_no_longer() -> None:
    room = new_room(members_only=True)
    with refused(C.REGISTRATION_REQUIRED):
        enter(room, "Bob", BOB)
    room.set_affiliation("owner", BOB, "member", "")
    enter(room, "Bob", BOB)
    outcome = room.set_affiliation("owner", BOB, "none", "")
    assert [codes(el) for el in outcome.send] == [{"321"}, {"321", "110"}]  # §9.4


def test_making_a_room_members_only_removes_non_members_with_322() -> None:
    room = new_room()
    enter(room, "Bob", BOB)
    room.set_affiliation("owner", CAROL, "member", "")
    enter(room, "Carol", CAROL)
    outcome = room.configure(dataclasses.replace(room.config, members_only=True))
    removed = [el for el in outcome.send if el.attrs.get("type") == "unavailable"]
    assert {el.attrs["from"] for el in removed} == {f"{ROOM}/Bob"}
    assert all("322" in codes(el) for el in removed)
    assert set(room.occupants) == {"Alice", "Carol"}


def test_password_protected_rooms_want_the_password_except_from_admins() -> None:
    room = new_room(password="secret")
    with refused(C.NOT_AUTHORIZED):
        enter(room, "Bob", BOB)
    with refused(C.NOT_AUTHORIZED):
        enter(room, "Bob", BOB, password="guess")
    enter(room, "Bob", BOB, password="secret")
    room.set_affiliation("owner", CAROL, "admin", "")
    enter(room, "Carol", CAROL)


def test_a_full_room_is_unavailable_except_to_its_admins() -> None:
    room = new_room(max_users=2)
    enter(room, "Bob", BOB)
    with refused(C.SERVICE_UNAVAILABLE):
        enter(room, "Dave", DAVE)
    room.set_affiliation("owner", CAROL, "admin", "")
    enter(room, "Carol", CAROL)
    assert len(room.occupants) == 3


def test_the_service_limit_caps_a_rooms_own_maximum() -> None:
    room = Room.create(ROOM, ALICE, RoomPolicy(max_occupants=2))
    room.join("Alice", ALICE, presence(), now=NOW)
    room.configure(dataclasses.replace(room.config, max_users=50))
    enter(room, "Bob", BOB)
    with refused(C.SERVICE_UNAVAILABLE):
        enter(room, "Dave", DAVE)


# --- nicks ----------------------------------------------------------------------------
def test_a_nick_in_use_or_reserved_by_someone_else_is_a_conflict() -> None:
    room = new_room()
    with refused(C.CONFLICT):
        enter(room, "Alice", BOB)
    enter(room, "Alice", ALICE_LAPTOP)  # the same account may share its nick
    reserve_nick(room, CAROL, "Caz")
    with refused(C.CONFLICT):
        enter(room, "Caz", BOB)
    enter(room, "Caz", CAROL)


def test_a_nick_change_is_303_with_the_new_nick_then_the_new_presence() -> None:
    room = new_room()
    enter(room, "Bob", BOB)
    with refused(C.CONFLICT):
        room.change_nick(occupant(room, BOB), "Alice", presence())
    assert set(room.occupants) == {"Alice", "Bob"}  # a refused change changes nothing
    out = room.change_nick(occupant(room, BOB), "Robert", presence())
    gone, arrived = out[:2], out[2:]
    assert all(el.attrs["type"] == "unavailable" for el in gone)
    assert {item(el)["nick"] for el in gone} == {"Robert"}
    assert [codes(el) for el in to(gone, BOB)] == [{"303", "110"}]
    assert [codes(el) for el in to(gone, ALICE)] == [{"303"}]
    assert {el.attrs["from"] for el in arrived} == {f"{ROOM}/Robert"}
    assert room.nicks[BOB] == "Robert"
    assert set(room.occupants) == {"Alice", "Robert"}


def test_registration_reserves_a_nick_and_makes_a_member() -> None:
    room = new_room()
    enter(room, "Bob", BOB)
    out = reserve_nick(room, BOB, "Bobby")
    assert room.affiliation(BOB) == "member"
    assert item(to(out, ALICE)[0])["affiliation"] == "member"
    with refused(C.CONFLICT):
        reserve_nick(room, CAROL, "Bobby")
    release_nick(room, BOB)
    assert room.affiliation(BOB) == "none"
    with refused(C.ITEM_NOT_FOUND):
        release_nick(room, BOB)
    with refused(C.NOT_ACCEPTABLE):
        reserve_nick(room, BOB, "")


# --- roles and affiliations ------------------------------------------------------------
def test_only_moderators_kick_and_never_someone_of_higher_affiliation() -> None:
    room = new_room()
    enter(room, "Bob", BOB)
    enter(room, "Carol", CAROL)
    with refused(C.FORBIDDEN):
        room.set_role(occupant(room, BOB), "Carol", "none", "")
    room.set_affiliation("owner", BOB, "member", "")
    room.set_role(occupant(room, ALICE), "Bob", "moderator", "")
    bob = occupant(room, BOB)
    with refused(C.NOT_ALLOWED):
        room.set_role(bob, "Alice", "none", "")  # an owner and a moderator
    with refused(C.FORBIDDEN):
        room.set_role(bob, "Carol", "moderator", "")  # §9.6: only admins grant moderation
    out = room.set_role(bob, "Carol", "none", "flood")
    assert [codes(el) for el in to(out, CAROL)] == [{"307", "110"}]
    kicked = to(out, CAROL)[0].find("x", MUC_USER)
    assert kicked is not None
    kicked_item = kicked.find("item", MUC_USER)
    assert kicked_item is not None
    assert kicked_item.child_text("reason", MUC_USER) == "flood"
    actor = kicked_item.find("actor", MUC_USER)
    assert actor is not None
    assert actor.attrs["nick"] == "Bob"
    assert "Carol" not in room.occupants


def test_voice_in_a_moderated_room() -> None:
    room = new_room(moderated=True)
    out = enter(room, "Bob", BOB)
    assert item(to(out, BOB)[-2])["role"] == "visitor"
    with refused(C.FORBIDDEN):
        say(room, BOB, "hello?")
    request = voice_request(room, occupant(room, BOB), {"muc#role": "participant"})
    assert [el.attrs["to"] for el in request] == [str(ALICE)]
    voice_request(room, occupant(room, ALICE), {"muc#request_allow": "true", "muc#roomnick": "Bob"})
    assert occupant(room, BOB).role == "participant"
    say(room, BOB, "thanks")
    room.set_role(occupant(room, ALICE), "Bob", "visitor", "")
    assert occupant(room, BOB).role == "visitor"


def test_affiliation_rank_rules() -> None:
    room = new_room()
    room.set_affiliation("owner", BOB, "admin", "")
    room.set_affiliation("owner", CAROL, "admin", "")
    with refused(C.FORBIDDEN):
        room.set_affiliation("member", DAVE, "outcast", "")  # members change nothing
    with refused(C.NOT_ALLOWED):
        room.set_affiliation("admin", ALICE, "outcast", "")  # an admin is below an owner
    with refused(C.NOT_ALLOWED):
        room.set_affiliation("admin", CAROL, "none", "")  # ... and not over another admin
    with refused(C.FORBIDDEN):
        room.set_affiliation("admin", DAVE, "admin", "")  # only owners make admins
    with refused(C.BAD_REQUEST):
        room.set_affiliation("owner", DAVE, "king", "")
    room.set_affiliation("admin", DAVE, "member", "")
    room.set_affiliation("admin", DAVE, "outcast", "")
    assert room.affiliation(DAVE) == "outcast"
    room.set_affiliation("owner", CAROL, "none", "")
    assert CAROL.bare not in room.affiliations


def test_a_room_keeps_its_last_owner() -> None:
    room = new_room()
    with refused(C.CONFLICT):
        room.set_affiliation("owner", ALICE, "admin", "")
    room.set_affiliation("owner", BOB, "owner", "")
    outcome = room.set_affiliation("owner", ALICE, "admin", "")
    assert item(outcome.send[0])["affiliation"] == "admin"
    with refused(C.CONFLICT):
        room.set_affiliation("owner", BOB, "member", "")


def test_an_affiliation_change_gives_the_role_it_brings() -> None:
    room = new_room(moderated=True)
    enter(room, "Bob", BOB)
    room.set_affiliation("owner", BOB, "admin", "")
    assert occupant(room, BOB).role == "moderator"
    room.set_affiliation("owner", BOB, "member", "")
    assert occupant(room, BOB).role == "participant"
    room.set_affiliation("owner", BOB, "none", "")
    assert occupant(room, BOB).role == "visitor"


# --- configuration ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"name": "Lounge"}, {"104"}),
        ({"logging": False}, {"104", "171"}),
        ({"whois": "anyone"}, {"104", "172"}),
    ],
)
def test_a_configuration_change_tells_occupants_what_changed(
    change: dict[str, object], expected: set[str]
) -> None:
    room = new_room()
    enter(room, "Bob", BOB)
    outcome = room.configure(dataclasses.replace(room.config, **change))  # type: ignore[arg-type]
    notices = [el for el in outcome.send if el.tag == "message"]
    assert outcome.changed
    assert {el.attrs["to"] for el in notices} == {str(ALICE), str(BOB)}
    assert all(codes(el) == expected for el in notices)


def test_whois_changes_resend_presences_with_or_without_real_jids() -> None:
    room = new_room()
    enter(room, "Bob", BOB)
    outcome = room.configure(dataclasses.replace(room.config, whois="anyone"))
    seen_by_bob = [el for el in to(outcome.send, BOB) if el.tag == "presence"]
    assert {item(el).get("jid") for el in seen_by_bob} == {str(ALICE), str(BOB)}
    back = room.configure(dataclasses.replace(room.config, whois="moderators"))
    assert all(codes(el) == {"104", "173"} for el in back.send if el.tag == "message")
    alice_seen_by_bob = [el for el in to(back.send, BOB) if el.attrs.get("from") == f"{ROOM}/Alice"]
    assert "jid" not in item(alice_seen_by_bob[0])


def test_the_first_configuration_unlocks_quietly_and_the_room_lives_on_if_persistent() -> None:
    room = Room.create(ROOM, ALICE, RoomPolicy(), locked=True)
    room.join("Alice", ALICE, presence(), now=NOW, created=True)
    outcome = room.configure(RoomConfig(persistent=True))
    assert outcome.send == []  # nobody to tell before the room opens
    assert not room.locked
    room.leave(occupant(room, ALICE), presence())
    assert not room.over  # persistent
    room.configure(RoomConfig(persistent=False))
    assert room.over  # temporary and empty


def test_destroy_tells_everyone_and_empties_the_room() -> None:
    room = new_room()
    enter(room, "Bob", BOB)
    destroy = Element("destroy", MUC_OWNER, {"jid": "elsewhere@conference.example.org"})
    destroy.add("reason", MUC_OWNER, text="moving")
    out = room.destroy(destroy)
    assert {el.attrs["to"] for el in out} == {str(ALICE), str(BOB)}
    for el in out:
        x = el.find("x", MUC_USER)
        assert x is not None
        moved = x.find("destroy", MUC_USER)
        assert moved is not None
        assert moved.child_text("reason", MUC_USER) == "moving"
    assert room.occupants == {}
    assert room.nicks == {}


# --- messages and history -----------------------------------------------------------------
def test_group_messages_come_from_the_nick_with_the_rooms_ids_only() -> None:
    room = new_room()
    enter(room, "Bob", BOB)
    el = Element("message", ns.CLIENT, {"type": "groupchat", "id": "m1", "to": str(ROOM)})
    el.add("body", ns.CLIENT, text="hi")
    el.add("stanza-id", SID, {"id": "forged", "by": str(ROOM)})
    el.add("occupant-id", OCCUPANT_ID, {"id": "forged"})
    message, changed = room.groupchat(occupant(room, BOB), el, NOW)
    assert not changed
    out = room.publish(message, NOW)
    assert [m.attrs["to"] for m in out] == [str(ALICE), str(BOB)]
    assert out[0].attrs["from"] == f"{ROOM}/Bob"
    assert out[0].attrs["id"] == "m1"
    assert out[0].find("stanza-id", SID) is None
    ids = [c.attrs["id"] for c in out[0].find_all("occupant-id", OCCUPANT_ID)]
    assert ids == [room.occupant_id(occupant(room, BOB))]
    assert ids != ["forged"]


def test_occupant_ids_are_per_account_and_per_room() -> None:
    room = new_room()
    enter(room, "Alice2", ALICE_LAPTOP)
    enter(room, "Bob", BOB)
    ids = {nick: room.occupant_id(o) for nick, o in room.occupants.items()}
    assert ids["Alice"] == ids["Alice2"] != ids["Bob"]
    other = Room(JID.parse("other@conference.example.org"), room.policy)
    assert other.occupant_id(room.occupants["Alice"]) != ids["Alice"]


def test_subjects_are_for_moderators_unless_the_room_lets_everyone() -> None:
    room = new_room()
    enter(room, "Bob", BOB)
    el = Element("message", ns.CLIENT, {"type": "groupchat"})
    el.add("subject", ns.CLIENT, text="Bob's room now")
    with refused(C.FORBIDDEN):
        room.groupchat(occupant(room, BOB), el, NOW)
    _message, changed = room.groupchat(occupant(room, ALICE), el, NOW)
    assert changed
    assert room.subject == "Bob's room now"
    assert room.subject_by == "Alice"
    joined = enter(room, "Carol", CAROL)
    assert joined[-1].attrs["from"] == f"{ROOM}/Alice"
    assert joined[-1].child_text("subject", ns.CLIENT) == "Bob's room now"


def test_an_occupant_beyond_its_burst_is_slowed_down() -> None:
    room = Room.create(ROOM, ALICE, RoomPolicy(messages_per_s=1.0, messages_burst=2))
    room.join("Alice", ALICE, presence(), now=NOW)
    say(room, ALICE, "one")
    say(room, ALICE, "two")
    with refused(C.RESOURCE_CONSTRAINT):
        say(room, ALICE, "three")
    say(room, ALICE, "three", now=NOW + 1)  # the time is an argument: a second later


def history(out: list[Element]) -> list[str | None]:
    return [el.child_text("body", ns.CLIENT) for el in out if el.find("delay", ns.DELAY)]


def test_history_keeps_the_services_maximum_and_the_rooms_length() -> None:
    room = new_room()  # the service keeps 5
    for n in range(8):
        say(room, ALICE, f"m{n}", now=NOW + n)
    assert history(enter(room, "Bob", BOB)) == ["m3", "m4", "m5", "m6", "m7"]
    room.configure(dataclasses.replace(room.config, history_length=2))
    assert history(enter(room, "Carol", CAROL)) == ["m6", "m7"]
    room.configure(dataclasses.replace(room.config, history_length=0))
    assert history(enter(room, "Dave", DAVE)) == []


def test_history_as_the_joiner_asks_for_it() -> None:
    room = new_room()
    for n in range(4):
        say(room, ALICE, f"m{n}", now=NOW + n * 10)  # at +0, +10, +20, +30
    later = NOW + 100

    def joined_by(who: JID, **request: str) -> list[str | None]:
        out = room.join(who.local or "", who, presence(**request), now=later)
        room.leave(occupant(room, who), presence())
        return history(out)

    out = room.join("Bob", BOB, presence(maxstanzas="2"), now=later)
    assert history(out) == ["m2", "m3"]
    delays = [d for d in (el.find("delay", ns.DELAY) for el in out) if d is not None]
    assert [d.attrs["from"] for d in delays] == [str(ROOM)] * 2
    assert [d.attrs["stamp"] for d in delays] == [stamp(NOW + 20), stamp(NOW + 30)]
    assert joined_by(CAROL, maxstanzas="0") == []
    assert joined_by(CAROL, seconds="85") == ["m2", "m3"]  # since +15
    assert joined_by(CAROL, since=stamp(NOW + 10)) == ["m2", "m3"]  # strictly after
    assert joined_by(CAROL, maxchars="0") == []
    assert joined_by(CAROL) == ["m0", "m1", "m2", "m3"]  # fewer than the room keeps: all
    assert joined_by(CAROL, maxstanzas="5") == ["m0", "m1", "m2", "m3"]


def test_messages_without_a_body_are_not_history() -> None:
    room = new_room()
    el = Element("message", ns.CLIENT, {"type": "groupchat"})
    el.add("active", "http://jabber.org/protocol/chatstates")
    message, _ = room.groupchat(occupant(room, ALICE), el, NOW)
    room.publish(message, NOW)
    assert len(room.history) == 0


def test_a_retracted_message_leaves_the_history() -> None:
    room = new_room()
    el = Element("message", ns.CLIENT, {"type": "groupchat"})
    el.add("body", ns.CLIENT, text="oops")
    message, _ = room.groupchat(occupant(room, ALICE), el, NOW)
    message.add("stanza-id", SID, {"by": str(ROOM), "id": "s1"})
    room.publish(message, NOW)
    assert room.find_in_history("s1") is message
    room.drop_from_history("s1")
    assert room.find_in_history("s1") is None


# --- private messages, invitations, leaving, persistence --------------------------------
def test_private_messages_follow_the_rooms_policy() -> None:
    room = new_room()
    enter(room, "Bob", BOB)
    chat = Element("message", ns.CLIENT, {"type": "chat"})
    chat.add("body", ns.CLIENT, text="psst")
    out = room.private(BOB, "Alice", chat)
    assert (out.attrs["from"], out.attrs["to"]) == (f"{ROOM}/Bob", str(ALICE))
    assert out.find("x", MUC_USER) is not None
    with refused(C.ITEM_NOT_FOUND):
        room.private(BOB, "Nobody", chat)
    with refused(C.NOT_ACCEPTABLE):
        room.private(CAROL, "Alice", chat)
    room.configure(dataclasses.replace(room.config, allow_pm="moderators"))
    with refused(C.NOT_ALLOWED):
        room.private(BOB, "Alice", chat)
    room.private(ALICE, "Bob", chat)


def test_invitations_to_a_members_only_room_make_members() -> None:
    room = new_room(members_only=True, password="pw")
    invite = Element("x", MUC_USER)
    invite.add("invite", MUC_USER, {"to": str(DAVE.bare)}).add("reason", MUC_USER, text="join")
    outcome = pass_on(room, occupant(room, ALICE), invite)
    assert outcome.changed
    assert room.affiliation(DAVE) == "member"
    [message] = outcome.send
    x = message.find("x", MUC_USER)
    assert x is not None
    assert x.child_text("password", MUC_USER) == "pw"
    forwarded = x.find("invite", MUC_USER)
    assert forwarded is not None
    assert forwarded.attrs["from"] == str(ALICE.bare)
    room.set_affiliation("owner", BOB, "member", "")
    enter(room, "Bob", BOB, password="pw")
    with refused(C.FORBIDDEN):
        pass_on(room, occupant(room, BOB), invite)  # members-only: admins invite


def test_leaving_says_110_to_the_leaver_and_ends_a_temporary_room() -> None:
    room = new_room()
    enter(room, "Bob", BOB)
    out = room.leave(occupant(room, BOB), presence())
    assert [(el.attrs["to"], codes(el)) for el in out] == [(str(ALICE), set()), (str(BOB), {"110"})]
    assert not room.over
    room.leave(occupant(room, ALICE), presence())
    assert room.over


def test_a_record_restores_what_persistent_rooms_keep() -> None:
    room = new_room(persistent=True, name="Lounge")
    room.set_affiliation("owner", BOB, "admin", "")
    reserve_nick(room, CAROL, "Caz")
    room.subject, room.vcard = "topic", "<vCard xmlns='vcard-temp'/>"
    restored = Room.restore(room.record(), room.policy)
    assert restored.record() == room.record()
    assert restored.occupants == {}
    assert restored.config.name == "Lounge"
    assert restored.affiliation(CAROL) == "member"
    assert restored.owner_of_nick("Caz") == CAROL.bare


def test_an_absent_users_new_affiliation_is_told_to_those_who_see_jids() -> None:
    """§9.3-§9.8 (Prosody's and ejabberd's notice): not in the room, so no presence; a
    message from the room names the JID to moderators (semi-anonymous), and to the actor
    when it is not joined."""
    room = new_room()
    enter(room, "Bob", BOB)
    outcome = room.set_affiliation("owner", DAVE, "member", "welcome", ALICE)
    [notice] = outcome.send
    assert notice.attrs == {"from": str(ROOM), "to": str(ALICE)}
    assert item(notice) == {"affiliation": "member", "jid": str(DAVE.bare)}
    outsider_admin = JID.parse("root@example.org/console")
    banned = room.set_affiliation("owner", CAROL, "outcast", "", outsider_admin).send
    assert sorted(el.attrs["to"] for el in banned) == sorted([str(ALICE), str(outsider_admin)])
    assert all(codes(el) == {"301"} for el in banned)
    # Someone in the room learns it from their presence instead, not from a notice.
    assert all(el.tag == "presence" for el in room.set_affiliation("owner", BOB, "member", "").send)


def test_presence_probes_between_occupants() -> None:
    """XEP-0045 1.35 §7.2: an occupant's probe gets the current presence of another."""
    room = new_room()
    away = Element("presence", ns.CLIENT)
    away.add("show", ns.CLIENT, text="away")
    room.join("Bob", BOB, away, now=NOW)
    answer = room.probe(occupant(room, ALICE), "Bob")
    assert answer.attrs["from"] == f"{ROOM}/Bob"
    assert answer.attrs["to"] == str(ALICE)
    assert answer.child_text("show", ns.CLIENT) == "away"
    assert room.probe(occupant(room, ALICE), "Nobody").attrs["type"] == "unavailable"
    with refused(C.NOT_ACCEPTABLE):
        room.probe(None, "Bob")
