"""In a real browser: headless Chromium, driven by Playwright, opens Heron's /chat page twice;
two users log in to Converse.js over WebSocket and exchange a message. Screenshots of both
pages are kept in the artefacts directory (HERON_ARTIFACTS, default ./artifacts)."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from heron.app import start
from heron.config import ServerConfig
from heron.jid import JID
from tests.conftest import services_required

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "web"
SCRIPT = Path(__file__).with_name("browser_chat.mjs")
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


def need_browser() -> None:
    missing = [
        what
        for what, ok in (
            ("node", shutil.which("node") is not None),
            ("chromium", Path(CHROMIUM).exists()),
            ("web/node_modules (make web)", (WEB / "node_modules" / "converse.js").is_dir()),
            ("playwright-core (make web)", (WEB / "node_modules" / "playwright-core").is_dir()),
        )
        if not ok
    ]
    if missing:
        message = f"the browser test needs {', '.join(missing)}"
        if services_required():
            pytest.fail(f"{message} and HERON_REQUIRE_SERVICES=1")
        pytest.skip(message)


@pytest.fixture
def artefacts() -> Path:
    folder = Path(os.environ.get("HERON_ARTIFACTS", ROOT / "artifacts"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


async def test_two_people_chat_in_their_browsers(
    config_factory: Callable[..., ServerConfig], artefacts: Path
) -> None:
    need_browser()
    listeners = [{"kind": "http", "host": "127.0.0.1", "port": 0}]
    running = await start(config_factory(listeners=listeners))
    try:
        for user in ("ann", "ben"):
            await running.server.accounts.create(JID.parse(f"{user}@localhost"), "browser-pw")
        url = f"http://127.0.0.1:{running.ports['http']}/chat"
        process = await asyncio.create_subprocess_exec(
            "node",
            str(SCRIPT),
            url,
            "ann@localhost",
            "ben@localhost",
            "browser-pw",
            str(artefacts),
            env={**os.environ, "HERON_WEB_DIR": str(WEB), "CHROMIUM": CHROMIUM},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await asyncio.wait_for(process.communicate(), 180)
        assert process.returncode == 0, output.decode(errors="replace")[-3000:]
        shots = [artefacts / f"chat-{n}.png" for n in (1, 2)]
        assert all(shot.stat().st_size > 0 for shot in shots)
    finally:
        await running.stop()
