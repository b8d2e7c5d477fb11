"""Every ``*.scn`` file here is one conversation test (the format: script.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from heron.app import start
from heron.config import ServerConfig
from tests.transcripts.runner import run_transcript
from tests.transcripts.script import load_transcript

HERE = Path(__file__).parent
TRANSCRIPTS = sorted(HERE.glob("*.scn"))


@pytest.mark.parametrize("path", TRANSCRIPTS, ids=[p.stem for p in TRANSCRIPTS])
async def test_transcript(path: Path, config_factory: Callable[..., ServerConfig]) -> None:
    script = load_transcript(path)
    running = await start(config_factory(**script.config))
    try:
        await run_transcript(running, script)
    finally:
        await running.stop()
