"""XEP-0433 channel search over this service's own public rooms (the search service is the
MUC service itself)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from heron import ns
from heron.modules.muc.config import DATA
from heron.modules.muc.room import Room
from heron.stanza import ErrorType, StanzaCondition, StanzaError
from heron.xmlstream.element import Element

ORDER_NUSERS: Final = f"{{{ns.CHANNEL_SEARCH_ORDER}}}nusers"
ORDER_ADDRESS: Final = f"{{{ns.CHANNEL_SEARCH_ORDER}}}address"


def search(rooms: Iterable[Room], payload: Element) -> Element:
    """XEP-0433 §4: the form, or the public rooms that match it, one page of them."""
    form = payload.find("x", DATA)
    if form is None:
        return _search_form()
    values = {
        f.attrs.get("var", ""): [v.text for v in f.find_all("value", DATA)]
        for f in form.find_all("field", DATA)
    }

    def flag(var: str, default: bool) -> bool:
        given = values.get(var)
        return default if not given else given[0] in ("1", "true")

    query = (values.get("q") or [""])[0]
    every = flag("all", False)
    if every and query:
        conflict = Element("conflicting-fields", ns.CHANNEL_SEARCH_ERRORS)
        for var in ("all", "q"):
            conflict.add("var", ns.CHANNEL_SEARCH_ERRORS, text=var)
        raise StanzaError(StanzaCondition.BAD_REQUEST, "all or q, not both", extra=conflict)
    if not every and "q" not in values:
        raise StanzaError(
            StanzaCondition.BAD_REQUEST,
            "give search terms (q) or ask for all",
            extra=Element("no-search-conditions", ns.CHANNEL_SEARCH_ERRORS),
        )
    terms = query.lower().split()
    if not every and not terms:
        raise StanzaError(
            StanzaCondition.BAD_REQUEST,
            "the search terms are empty",
            extra=Element("invalid-search-terms", ns.CHANNEL_SEARCH_ERRORS),
        )
    key = (values.get("key") or [ORDER_NUSERS])[0]
    if key not in (ORDER_NUSERS, ORDER_ADDRESS):
        raise StanzaError(
            StanzaCondition.FEATURE_NOT_IMPLEMENTED,
            "sort by {urn:xmpp:channel-search:0:order}nusers or address",
            type=ErrorType.MODIFY,
            extra=Element("invalid-sort-key", ns.CHANNEL_SEARCH_ERRORS),
        )
    types = values.get("types") or ["xep-0045"]
    try:
        min_users = int((values.get("min_users") or ["0"])[0] or "0")
    except ValueError:
        min_users = 0
    in_name, in_description = flag("sinname", True), flag("sindescription", True)
    in_address = flag("sinaddress", True) or flag("sinaddr", True)
    found = []
    for room in rooms:
        c = room.config
        if not c.public or room.locked or len(room.occupants) < min_users:
            continue
        if "xep-0045" not in types:
            continue
        haystack = " ".join(
            part
            for part, wanted in (
                (c.name, in_name),
                (c.description, in_description),
                (str(room.jid), in_address),
            )
            if wanted
        ).lower()
        if every or all(term in haystack for term in terms):
            found.append(room)
    if key == ORDER_ADDRESS:
        found.sort(key=lambda r: str(r.jid))
    else:
        found.sort(key=lambda r: (-len(r.occupants), str(r.jid)))
    page, rsm = _search_page(found, payload.find("set", ns.RSM))
    result = Element("result", ns.CHANNEL_SEARCH)
    for room in page:
        c = room.config
        item = result.add("item", ns.CHANNEL_SEARCH, {"address": str(room.jid)})
        item.add("name", ns.CHANNEL_SEARCH, text=c.name or room.jid.local or "")
        if c.description:
            item.add("description", ns.CHANNEL_SEARCH, text=c.description)
        item.add("nusers", ns.CHANNEL_SEARCH, text=str(len(room.occupants)))
        item.add("service-type", ns.CHANNEL_SEARCH, text="xep-0045")
        item.add(
            "is-open", ns.CHANNEL_SEARCH, text="false" if c.members_only or c.password else "true"
        )
        item.add(
            "anonymity-mode",
            ns.CHANNEL_SEARCH,
            text=f"{{{ns.CHANNEL_SEARCH_ANONYMITY}}}none"
            if c.whois == "anyone"
            else "muc_semianonymous",
        )
    result.append(rsm)
    return result


def _search_form() -> Element:
    """XEP-0433 §4.2.1: every field Heron supports, with its default."""
    search = Element("search", ns.CHANNEL_SEARCH)
    form = search.add("x", DATA, {"type": "form"})
    for var, type_, label, value, options in (
        ("FORM_TYPE", "hidden", "", ns.CHANNEL_SEARCH_PARAMS, ()),
        ("q", "text-single", "Search for", "", ()),
        ("all", "boolean", "Return all rooms (ignore the search terms)", "", ()),
        ("sinname", "boolean", "Search in name", "true", ()),
        ("sindescription", "boolean", "Search in description", "true", ()),
        ("sinaddress", "boolean", "Search in address", "true", ()),
        ("min_users", "text-single", "Minimum number of users", "1", ()),
        ("types", "list-multi", "Service types", "xep-0045", ("xep-0045",)),
        ("key", "list-single", "Sort results by", ORDER_NUSERS, (ORDER_NUSERS, ORDER_ADDRESS)),
    ):
        field = form.add("field", DATA, {"var": var, "type": type_})
        if label:
            field.attrs["label"] = label
        if value:
            field.add("value", DATA, text=value)
        for option in options:
            field.add("option", DATA).add("value", DATA, text=option)
    return search


def _search_page(rooms: list[Room], rsm: Element | None) -> tuple[list[Room], Element]:
    """XEP-0059 over the sorted result; rooms' addresses are the page markers."""
    limit = 50
    after = None
    if rsm is not None:
        try:
            limit = max(0, min(int(rsm.child_text("max", ns.RSM) or limit), 100))
        except ValueError:
            limit = 50
        after = rsm.child_text("after", ns.RSM)
    start = 0
    if after:
        addresses = [str(r.jid) for r in rooms]
        start = addresses.index(after) + 1 if after in addresses else len(rooms)
    page = rooms[start : start + limit]
    out = Element("set", ns.RSM)
    if page:
        out.add("first", ns.RSM, {"index": str(start)}, text=str(page[0].jid))
        out.add("last", ns.RSM, text=str(page[-1].jid))
    out.add("count", ns.RSM, text=str(len(rooms)))
    return page, out
