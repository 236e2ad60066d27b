"""Processes the drill starts, and waiting for them to be ready.

Every process is recorded as `Started` (by PID) so that teardown stops exactly those.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

READY_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 5.0


class SandboxError(RuntimeError):
    """A part of the sandbox could not be started; the message says which and why."""


@dataclass
class Started:
    """A process we started: stopped by its own PID, never by name."""

    name: str
    pid: int
    popen: subprocess.Popen[bytes] | None = None

    def alive(self) -> bool:
        if self.popen is not None:
            return self.popen.poll() is None
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        return _state(self.pid) != "Z"

    def stop(self, sig: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT_S) -> None:
        for signal_to_send, wait in ((sig, timeout), (signal.SIGKILL, timeout)):
            if not self.alive():
                break
            try:
                os.kill(self.pid, signal_to_send)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + wait
            while self.alive() and time.monotonic() < deadline:
                time.sleep(0.02)
        if self.popen is not None:
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL was sent
                pass


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except (OSError, IndexError):
        return "?"


def wait_for_file(path: Path, started: Started, what: str, log: Path | None = None) -> str:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return path.read_text().strip()
        if not started.alive():
            tail = log.read_text(errors="replace")[-600:] if log and log.exists() else ""
            raise SandboxError(f"{what} exited before it was ready: {tail}")
        time.sleep(0.05)
    raise SandboxError(f"{what} was not ready within {READY_TIMEOUT_S:g} s")


def wait_http(
    url: str, what: str, timeout: float = READY_TIMEOUT_S, headers: dict[str, str] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            request = urllib.request.Request(url, headers=headers or {})
            with urllib.request.urlopen(request, timeout=2) as answer:  # noqa: S310 - our own server
                if answer.status < 500:
                    return
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code}"
        except OSError as exc:
            last = str(exc)
        time.sleep(0.1)
    raise SandboxError(f"{what} did not answer at {url} within {timeout:g} s ({last})")
