"""Coverage-guided fuzzing (atheris) of what clients control: stream bytes and stanzas.

    python tests/fuzz/fuzz_c2s.py parser  [libFuzzer flags] [corpus dir]
    python tests/fuzz/fuzz_c2s.py stanzas [libFuzzer flags] [corpus dir]

``parser`` feeds the bytes, split in two, to a fresh stream parser: only XmlStreamError may
come out. ``stanzas`` feeds them to a logged-in session of a real in-memory server
(tests/harness.py): the engine must never raise, and another user's session must still be
served with its data intact. Any other outcome is a crash that libFuzzer reports with the
input that caused it. ``make test`` runs both briefly; ``make fuzz`` runs them for long.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

import atheris

with atheris.instrument_imports():
    from heron.jid import JID
    from heron.stream.c2s import C2SStream
    from heron.xmlstream import StreamParser, XmlStreamError
    from tests.harness import HEADER, PASSWORD, connect, start_server

SEEDS = (
    b"<message to='victim@localhost' type='chat'><body>hi</body></message>",
    b"<presence><priority>5</priority><show>away</show></presence>",
    b"<presence to='victim@localhost' type='subscribe'/>",
    b"<iq type='get' id='1'><query xmlns='jabber:iq:roster' ver='3'/></iq>",
    b"<iq type='set' id='2'><query xmlns='jabber:iq:roster'><item jid='a@b' name='n'>"
    b"<group>g</group></item></query></iq>",
    b"<iq type='set' id='3'><vCard xmlns='vcard-temp'><FN>x</FN></vCard></iq>",
    b"<iq type='set' id='4'><query xmlns='jabber:iq:private'><n xmlns='x:y'/></query></iq>",
    b"<iq type='set' id='5'><block xmlns='urn:xmpp:blocking'><item jid='victim@localhost'/>"
    b"</block></iq>",
    b"<iq type='get' id='6' to='localhost'><query "
    b"xmlns='http://jabber.org/protocol/disco#info'/></iq>",
    b"<iq type='get' id='7' to='victim@localhost'><query xmlns='jabber:iq:last'/></iq>",
)


def fuzz_parser(data: bytes) -> None:
    parser = StreamParser()
    half = len(data) // 2
    try:
        parser.feed(HEADER + data[:half])
        parser.feed(data[half:])
    except XmlStreamError:
        pass


class StanzaTarget:
    def __init__(self, data_dir: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.server = self.loop.run_until_complete(start_server(data_dir, ("victim", "mallory")))
        self.victim, self.victim_link = self.loop.run_until_complete(
            connect(self.server, "victim", "v")
        )
        self.loop.run_until_complete(
            self.victim.receive(
                b"<iq type='set' id='s'><vCard xmlns='vcard-temp'><FN>Victim</FN></vCard></iq>"
            )
        )
        self.mallory: C2SStream | None = None
        self.runs = 0

    async def _mallory(self) -> C2SStream:
        if self.mallory is None or self.mallory.is_closed:
            if self.mallory is not None:
                await self.server.ended(self.mallory)
            account = JID.parse("mallory@localhost")
            if not await self.server.accounts.exists(account):
                await self.server.accounts.create(account, PASSWORD)
            self.mallory, _link = await connect(self.server, "mallory", "m")
        return self.mallory

    async def _one(self, data: bytes) -> None:
        mallory = await self._mallory()
        await mallory.receive(data)
        self.runs += 1
        if self.runs % 50 == 0:  # the other user is untouched (checked now and then)
            assert not self.victim.is_closed
            self.victim_link.take()
            await self.victim.receive(b"<iq type='get' id='c'><vCard xmlns='vcard-temp'/></iq>")
            answer = self.victim_link.take()
            assert "<FN>Victim</FN>" in answer, answer

    def __call__(self, data: bytes) -> None:
        self.loop.run_until_complete(self._one(data))


def main() -> None:
    target_name, args = sys.argv[1], [sys.argv[0], *sys.argv[2:]]
    corpus = [a for a in args[1:] if not a.startswith("-")]
    for folder in corpus:
        path = Path(folder)
        if path.is_dir() and not any(path.iterdir()):
            for n, seed in enumerate(SEEDS):
                (path / f"seed-{n}").write_bytes(seed)
    with tempfile.TemporaryDirectory() as tmp:
        target = fuzz_parser if target_name == "parser" else StanzaTarget(Path(tmp))
        atheris.Setup(args, target)
        atheris.Fuzz()


if __name__ == "__main__":
    main()
