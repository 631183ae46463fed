"""The service as deployed, in a child process: ``python -m workers relay`` on a free port,
configured only by environment variables. The one way tests, benchmarks and the soak start
a relay process (in-process relays for tests are ``relay_helpers.running_relay``)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent
# What a child keeps from this process's environment; everything else is set explicitly.
_INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "NODE_PATH")
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def base_env() -> dict[str, str]:
    return {k: os.environ[k] for k in _INHERITED if k in os.environ}


class RelayProcess:
    """``python -m workers relay`` on 127.0.0.1 and a free port.

    ``env`` holds the settings (``MESSAGE_RATE="0"``); ``log`` is a file for the relay's
    stdout and stderr (appended), else its stderr is kept in a temporary file for
    :meth:`output`. Ready means ``/health`` answers 200 with the changefeed listening."""

    def __init__(
        self,
        database_url: str,
        *,
        secret: str,
        log: Path | None = None,
        **env: Any,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        fixed = {
            "DATABASE_URL": database_url,
            "JWT_SECRET": secret,
            "PORT": str(self.port),
            "HOST": "127.0.0.1",
        }
        if clash := sorted(fixed.keys() & env.keys()):
            raise ValueError(f"{', '.join(clash)}: set by RelayProcess itself")
        values = base_env() | {"LOG_LEVEL": "WARNING"} | {k: str(v) for k, v in env.items()}
        values |= fixed
        self._log_path = log
        self.log: IO[bytes] = log.open("ab") if log else tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "workers", "relay"],
            cwd=ROOT,
            env=values,
            stdout=self.log if log else subprocess.DEVNULL,
            stderr=self.log,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        """The end of what the relay wrote (its log)."""
        if self._log_path is not None:
            self.log.flush()
            return self._log_path.read_bytes().decode(errors="replace")[-4000:]
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-4000:]

    def _health(self) -> tuple[int, dict[str, Any]] | None:
        # /health may take a database ping and a Redis ping of 2 s each; never a proxy.
        try:
            with _DIRECT.open(self.url + "/health", timeout=6) as resp:
                return resp.status, json.loads(resp.read())
        except OSError as exc:
            code = getattr(exc, "code", None)  # HTTPError: 503 while a dependency is down
            if code is not None:
                return int(code), json.loads(exc.read())  # type: ignore[attr-defined]
            return None

    def _is_ready(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"the relay exited with {self.proc.returncode}: {self.output()}")
        found = self._health()
        return (
            found is not None
            and found[0] == 200
            and found[1].get("changefeed", {}).get("status") == "listening"
        )

    def wait_ready(self, timeout: float = 60) -> None:
        """Block until ready (for synchronous callers: the benchmarks, the soak)."""
        deadline = time.monotonic() + timeout
        while not self._is_ready():
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"relay on {self.port} not ready in {timeout} s: {self.output()}"
                )
            time.sleep(0.1)

    async def ready(self, within: float = 15) -> None:
        """Wait until ready without blocking the event loop."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while not await asyncio.to_thread(self._is_ready):
            if loop.time() > deadline:
                raise TimeoutError(f"relay on {self.port} not ready in {within} s: {self.output()}")
            await asyncio.sleep(0.1)

    async def health(self) -> tuple[int, dict[str, Any]]:
        found = await asyncio.to_thread(self._health)
        if found is None:
            raise ConnectionError(f"relay on {self.port} does not answer")
        return found

    def kill(self) -> None:
        """SIGKILL: the relay dies without a word (its leases and locks go with it)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        """SIGTERM and a graceful shutdown; SIGKILL after 15 s."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()

    def __enter__(self) -> RelayProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
