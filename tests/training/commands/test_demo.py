"""`recsys demo` as a newcomer runs it: a quick version answers first, the full one replaces it live
without a restart, and Ctrl-C stops the service with the demo."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from tests.app.live_server import ROOT, free_port


def _wait_for(lines: list[str], pattern: str, proc: subprocess.Popen[str], timeout_s: float) -> re.Match[str]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for line in list(lines):
            if found := re.search(pattern, line):
                return found
        assert proc.poll() is None, "".join(lines)
        time.sleep(0.1)
    raise AssertionError(f"no line matched {pattern!r} within {timeout_s}s:\n{''.join(lines)}")


def test_demo_serves_a_quick_version_first_then_swaps_in_every_tier_live(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECSYS_")}
    env["RECSYS_TWO_TOWER_EPOCHS"] = "2"
    command = [
        sys.executable,
        "-m",
        "training.cli",
        "demo",
        "--workdir",
        str(tmp_path),
        "--users",
        "1500",
        "--items",
        "400",
        "--interactions",
        "40000",
        "--port",
        str(port),
    ]
    proc = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines: list[str] = []
    assert proc.stdout is not None
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)
    reader.start()
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_for(lines, r"serving als_v1 on ", proc, timeout_s=120)
        first = httpx.post(f"{base}/candidates", json={"user_id": "u000001", "k": 5}).json()
        assert first["model_version"] == "als_v1"
        assert first["method_used"] in {"als", "popularity"}
        assert len(first["candidates"]) == 5

        _wait_for(lines, r"als_v2 \(every tier's model\) is live", proc, timeout_s=400)
        # The same server process answers from the full version: a hot reload, not a restart.
        assert httpx.get(f"{base}/readyz").json()["model_version"] == "als_v2"
        cold = httpx.post(f"{base}/candidates", json={"user_id": "never-seen", "k": 5}).json()
        assert cold["model_version"] == "als_v2" and cold["method_used"] == "popularity"
        text = "".join(lines)
        assert text.index("serving als_v1") < text.index("step 2/2") < text.index("per-tier holdout")
        assert "version als_v2 loaded" in text
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    reader.join(timeout=5)
    assert "stopping" in "".join(lines)
    try:
        httpx.get(f"{base}/healthz", timeout=2)
    except httpx.TransportError:
        pass
    else:
        raise AssertionError("the service outlived the demo")


def test_demo_without_serving_trains_and_publishes_the_full_version_only(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECSYS_")}
    env["RECSYS_TWO_TOWER"] = "false"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "training.cli",
            "demo",
            "--workdir",
            str(tmp_path),
            "--users",
            "800",
            "--items",
            "200",
            "--interactions",
            "15000",
            "--no-serve",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "artifacts").glob("als_v*")) == ["als_v1"]
    assert "step 1/2" not in result.stderr
    assert "published als_v1" in result.stderr
