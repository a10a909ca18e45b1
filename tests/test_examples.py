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


def test_demo_part_2_subscribes_by_itself_publishes_and_filters() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "examples" / "demo.py")],
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    part2 = result.stdout.split("== Part 2: the whole loop on this machine, with a local NC ==")[1]
    lines = [line.strip() for line in part2.splitlines() if line.strip()]
    assert lines[0].startswith("local NC listening on http://127.0.0.1:")
    # The probe is answered while the NC handles the POST: 401 without auth, 204 with it.
    probes = lines.index("<- NC probe without auth -> HTTP 401")
    assert lines[probes + 1] == "<- NC probe with auth    -> HTTP 204"
    created = lines[probes + 2]
    assert created.startswith("nc_receiver: abonnement created (http://127.0.0.1:")
    assert created.endswith(") for documenten, zaken[bronorganisatie]")
    assert ("subscribing again (as every restart does): abonnement unchanged, nothing written"
            in lines)
    assert "the NC delivered it 1 time(s); handler(s) ran: status_created" in lines
    assert any(line.startswith("status_created") and "ran for zaken status create" in line
               for line in lines)
    assert lines[-1] == ("not delivered: the NC delivered it 0 time(s) (the abonnement filters "
                         "on our bronorganisatie); handler(s) ran: none")
    assert "Traceback" not in result.stderr
    assert "sometoken" not in result.stdout  # no secret on screen
