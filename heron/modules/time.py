"""XEP-0202: Entity Time of the server, in UTC.

The clock is the ``now`` attribute so that tests can set the time instead of reading it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from heron import ns
from heron.core.module import Module, ModuleContext, Xep, iq_handler
from heron.core.registry import Target
from heron.stanza import Stanza
from heron.xmlstream.element import Element


def _utc_now() -> datetime:
    return datetime.now(UTC)


def format_datetime(moment: datetime) -> str:
    """XEP-0082 §3.2 DateTime in UTC with milliseconds: ``YYYY-MM-DDThh:mm:ss.sssZ``.

    A naive datetime is taken to be UTC already.
    """
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond // 1000:03d}Z"


class TimeModule(Module):
    name = "time"
    description = "Tells the server's current time (always in UTC)."
    xeps = (Xep(202, "2.0", "complete"), Xep(82, "1.1.1", "partial", "DateTime in UTC only"))
    disco_features = (ns.TIME,)

    def __init__(self, ctx: ModuleContext) -> None:
        super().__init__(ctx)
        self.now: Callable[[], datetime] = _utc_now

    @iq_handler("get", ns.TIME, Target.HOST)
    async def on_time(self, iq: Stanza) -> Element | None:
        """XEP-0202 §3: <tzo/> is the offset from UTC, <utc/> the time in UTC."""
        query = Element("time", ns.TIME)
        query.add("tzo", text="+00:00")  # the server answers in UTC, whatever its local zone
        query.add("utc", text=format_datetime(self.now()))
        return query
