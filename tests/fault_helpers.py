"""Real processes for fault tests: a redis-server the test owns, relay processes."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from typing import Any

import aiohttp

from .conftest import ROOT, SECRET


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """``redis-server --port N`` in a temporary directory, stopped and started at will.
    With ``persist`` it keeps its data across a stop (append-only file), as a production
    Redis with persistence would."""

    def __init__(self, *, persist: bool = True) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is needed (scripts/test installs it)")
        self.binary = binary
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.dir = tempfile.TemporaryDirectory(prefix="chat-redis-")
        self.persist = persist
        self.proc: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        self._spawn()
        for _ in range(100):
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writer.close()
                await writer.wait_closed()
                return
            except OSError:
                await asyncio.sleep(0.05)
        raise TimeoutError(f"redis-server on {self.port} did not start")

    def _spawn(self) -> None:
        args = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            self.dir.name,
            "--save",
            "",
            "--appendonly",
            "yes" if self.persist else "no",
            "--appendfsync",
            "always",
        ]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None

    def close(self) -> None:
        self.stop()
        self.dir.cleanup()


class RelayProcess:
    """``python -m workers relay`` on a free port, its stderr kept for failures."""

    def __init__(self, database_url: str, **env: Any) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        values = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "DATABASE_URL": database_url,
            "JWT_SECRET": SECRET,
            "PORT": str(self.port),
            "HOST": "127.0.0.1",
            "LOG_LEVEL": "WARNING",
            **{k: str(v) for k, v in env.items()},
        }
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "workers", "relay"],
            cwd=ROOT,
            env=values,
            stdout=subprocess.DEVNULL,
            stderr=self.log,
        )

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-4000:]

    async def ready(self) -> None:
        async with aiohttp.ClientSession() as http:
            for _ in range(150):
                if self.proc.poll() is not None:
                    raise RuntimeError(self.output())
                try:
                    async with http.get(self.url + "/health") as resp:
                        body = await resp.json()
                        if resp.status == 200 and body["changefeed"]["status"] == "listening":
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        raise TimeoutError(f"relay on {self.port} did not become ready: {self.output()}")

    async def health(self) -> tuple[int, dict[str, Any]]:
        async with aiohttp.ClientSession() as http, http.get(self.url + "/health") as resp:
            return resp.status, await resp.json()

    def kill(self) -> None:
        """SIGKILL: the relay dies without a word (its leases and locks go with it)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()


async def until(check: Any, *, within: float, every: float = 0.1) -> float:
    """Poll the async ``check`` until it returns truthy; the seconds it took."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    while True:
        if await check():
            return loop.time() - started
        if loop.time() - started > within:
            raise TimeoutError(f"not true within {within} s")
        await asyncio.sleep(every)


__all__ = ["ROOT", "RedisServer", "RelayProcess", "free_port", "until"]
