"""Real processes for fault tests: a redis-server the test owns, relay processes."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
from typing import Any

import redis.asyncio as aioredis

from . import relay_process
from .conftest import ROOT, SECRET
from .relay_process import free_port

# The machine's Redis, for tests that share one (a database number of their own).
REDIS_URL = os.environ.get("CHAT_TEST_REDIS_URL", "redis://127.0.0.1:6379/7")


async def redis_available() -> bool:
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        await asyncio.wait_for(client.ping(), timeout=2)
        return True
    except Exception:
        return False
    finally:
        await client.aclose()


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


class RelayProcess(relay_process.RelayProcess):
    """``python -m workers relay`` on a free port, signed with the tests' JWT secret."""

    def __init__(self, database_url: str, **env: Any) -> None:
        super().__init__(database_url, secret=SECRET, **env)


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


__all__ = [
    "REDIS_URL",
    "ROOT",
    "RedisServer",
    "RelayProcess",
    "free_port",
    "redis_available",
    "until",
]
