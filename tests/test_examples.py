"""The README's demo and the example consumer work as documented."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_demo_runs_and_shows_every_answer() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "examples" / "demo.py")],
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "no auth   kanaal=test   some_resource  create          -> HTTP 401  no handler" in out
    assert "with auth kanaal=test   some_resource  create          -> HTTP 204  no handler" in out
    assert "with auth kanaal=zaken  status         create          -> HTTP 204  status_created" \
        in out
    assert "Traceback" not in result.stderr
