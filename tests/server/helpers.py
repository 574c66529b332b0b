"""Starting ``llmrt serve`` in a subprocess on a free loopback port, for tests."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

STARTUP_TIMEOUT_S = 90.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """One ``llmrt serve`` subprocess (CPU backend, one compute thread) and its log."""

    def __init__(
        self, model_dir: str | Path, log_path: Path, *args: str, env: dict[str, str] | None = None
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        command = [
            sys.executable,
            "-m",
            "llmrt.cli.main",
            "serve",
            str(model_dir),
            "--port",
            str(self.port),
            "--backend",
            "cpu",
            *args,
        ]
        full_env = {**os.environ, "LLMRT_CPU_NUM_THREADS": "1", **(env or {})}
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(
            command, stdout=self._log, stderr=subprocess.STDOUT, env=full_env
        )

    def wait_healthy(self, timeout: float = STARTUP_TIMEOUT_S) -> float:
        """Poll /health until 200; returns seconds since the process started."""
        deadline = self.started_at + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1.0).status_code == 200:
                    return time.monotonic() - self.started_at
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"server not healthy after {timeout} s:\n{self.log()}")

    def engine_pid(self) -> int:
        """The pid of the engine process (the server's only child)."""
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
        return int(children[0])

    def log(self) -> str:
        """What the server printed so far."""
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Send ``sig`` and wait for the exit status (killed after ``timeout``)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()
        return self.proc.returncode


def metric_values(url: str, name: str) -> dict[str, float]:
    """Values of the metric ``name`` at ``url``/metrics, keyed by their label string."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    pattern = re.compile(rf"^{re.escape(name)}(\{{[^}}]*\}})? (\S+)$", re.MULTILINE)
    return {labels or "": float(value) for labels, value in pattern.findall(text)}


def metric(url: str, name: str) -> float:
    """The sum of the metric ``name`` over its label sets."""
    return sum(metric_values(url, name).values())


def wait_idle(url: str, timeout: float = 30.0) -> None:
    """Wait until nothing runs or waits and every KV block is free; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    state = {}
    while time.monotonic() < deadline:
        state = {
            name: metric(url, f"llmrt:{name}")
            for name in (
                "num_requests_running",
                "num_requests_waiting",
                "kv_cache_free_blocks",
                "kv_cache_num_blocks",
            )
        }
        if (
            state["num_requests_running"] == 0
            and state["num_requests_waiting"] == 0
            and state["kv_cache_free_blocks"] == state["kv_cache_num_blocks"] > 0
        ):
            return
        time.sleep(0.1)
    raise AssertionError(f"server not idle after {timeout} s: {state}")
