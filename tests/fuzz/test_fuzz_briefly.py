"""A short, bounded fuzzing run of each target in every test run (``make fuzz`` runs long)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TARGET = ROOT / "tests" / "fuzz" / "fuzz_c2s.py"


@pytest.mark.timeout(120)
@pytest.mark.parametrize(("target", "runs"), [("parser", 20000), ("stanzas", 1500)])
def test_fuzz_target_finds_no_crash(tmp_path: Path, target: str, runs: int) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run(
        [sys.executable, str(TARGET), target, f"-runs={runs}", "-max_total_time=60", str(corpus)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Done" in done.stderr
