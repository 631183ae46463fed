"""Processes for scripts/bench (not collected by pytest): the relay as a black box
(``python -m workers relay`` with env variables), the Node servers under bench/, the Node
load generator driven line by line, and CPU and memory read from /proc."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import time
import urllib.request
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .relay_process import ROOT, RelayProcess, base_env, free_port

BENCH = ROOT / "bench"
NODE = os.environ.get("NODE", "node")
_TICK = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------------------- /proc
def _stat(pid: int) -> list[str]:
    with open(f"/proc/{pid}/stat") as f:
        text = f.read()
    return text[text.rindex(")") + 2 :].split()  # fields from state (3rd) on


def cpu_seconds(pid: int, *, children: bool = False) -> float:
    """utime + stime of a process (and of its reaped children when asked)."""
    try:
        f = _stat(pid)
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    ticks = int(f[11]) + int(f[12])  # utime, stime
    if children:
        ticks += int(f[13]) + int(f[14])  # cutime, cstime
    return ticks / _TICK


def cpu_tree_seconds(root_pid: int) -> float:
    """A server and every process under it: the postmaster's own time, what its exited
    backends left in its cutime/cstime, and each live child's time."""
    total = cpu_seconds(root_pid, children=True)
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            f = _stat(int(entry.name))
        except (FileNotFoundError, ProcessLookupError, ValueError):
            continue
        if int(f[1]) == root_pid:
            total += (int(f[11]) + int(f[12]) + int(f[13]) + int(f[14])) / _TICK
    return total


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def rss_tree_bytes(root_pid: int) -> int:
    """A server's RSS and that of each live child process (a server that serves from
    workers of its own is counted whole)."""
    total = rss_bytes(root_pid)
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            if int(_stat(int(entry.name))[1]) == root_pid:
                total += rss_bytes(int(entry.name))
        except (FileNotFoundError, ProcessLookupError, ValueError):
            continue
    return total


def postmaster_pid(data_directory: str) -> int | None:
    try:
        return int(Path(data_directory, "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None


# ---------------------------------------------------------------------------- servers
def read_env_file(path: Path) -> dict[str, str]:
    env: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            env[key.strip()] = value.strip()
    return env


def _wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer 200 within {timeout:.0f} s")


@dataclass
class Server:
    name: str
    proc: subprocess.Popen[bytes]
    url: str

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@contextlib.contextmanager
def relay(*, database_url: str, secret: str, data_dir: Path, log: Path) -> Any:
    """The service exactly as deployed: ``python -m workers relay``, configured only by
    environment variables; bench/relay.env holds every override of this run."""
    env = read_env_file(BENCH / "relay.env") | {"DATA_DIR": str(data_dir), "REDIS_URL": ""}
    process = RelayProcess(database_url, secret=secret, log=log, **env)
    server = Server("relay", process.proc, process.url)
    try:
        process.wait_ready(60)
        yield server
    finally:
        process.stop()


@contextlib.contextmanager
def node_server(
    *, mode: str, secret: str, log: Path, database_url: str = "", extra: Mapping[str, str] = {}
) -> Any:
    """bench/baseline/server.mjs: MODE=original (the original Node stack: Socket.IO + pg) or
    echo."""
    port = free_port()
    env = base_env() | {
        "PORT": str(port),
        "MODE": mode,
        "JWT_SECRET": secret,
        "DATABASE_URL": database_url,
        **extra,
    }
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [NODE, str(BENCH / "baseline" / "server.mjs")],
            cwd=BENCH,
            env=env,
            stdout=out,
            stderr=out,
        )
    server = Server(mode, proc, f"http://127.0.0.1:{port}")
    try:
        _wait_http(f"{server.url}/health", proc, 30)
        yield server
    finally:
        server.stop()


# ---------------------------------------------------------------------------- loadgen
class LoadGen:
    """bench/loadgen.mjs: commands in on stdin, one JSON answer a line on stdout."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    @property
    def pid(self) -> int:
        return self.proc.pid

    async def call(self, wait_s: float, **command: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write((json.dumps(command) + "\n").encode())
        await self.proc.stdin.drain()
        while True:
            line = await asyncio.wait_for(self.proc.stdout.readline(), wait_s)
            if not line:
                raise RuntimeError(f"the load generator exited ({self.proc.returncode})")
            answer: dict[str, Any] = json.loads(line)
            if answer.get("event") == "error":
                raise RuntimeError(f"load generator: {answer.get('message')}")
            return answer


@contextlib.asynccontextmanager
async def loadgen(
    *,
    url: str,
    secret: str,
    pairs: list[tuple[str, str, str]],
    workdir: Path,
    log: Path,
    pg_url: str = "",
    pg_pool: int = 16,
) -> AsyncIterator[LoadGen]:
    config = workdir / f"loadgen-{os.getpid()}-{time.monotonic_ns()}.json"
    config.write_text(
        json.dumps(
            {"url": url, "secret": secret, "pairs": pairs, "pg_url": pg_url, "pg_pool": pg_pool}
        )
    )
    with log.open("ab") as err:
        proc = await asyncio.create_subprocess_exec(
            NODE,
            "--max-old-space-size=8192",
            str(BENCH / "loadgen.mjs"),
            str(config),
            cwd=BENCH,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=err,
            limit=1 << 20,
        )
    gen = LoadGen(proc)
    try:
        ready = json.loads(await asyncio.wait_for(proc.stdout.readline(), 30))  # type: ignore[union-attr]
        assert ready.get("event") == "ready", ready
        yield gen
    finally:
        with contextlib.suppress(Exception):
            await gen.call(10, cmd="close")
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(proc.wait(), 10)
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        config.unlink(missing_ok=True)
