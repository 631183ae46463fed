"""Benchmark (not collected by pytest): the server's memory during ten concurrent 10 MB
uploads. Runs the real service (``python -m workers relay``) as a child process on a
seeded database, uploads a 10 MB WAV ten times at once as the demo client into the demo
session, and reads the child's resident memory from /proc: VmRSS before, sampled during,
and VmHWM (the kernel's peak, reset first through /proc/<pid>/clear_refs).

    scripts/bench uploads        # makes a throwaway database, then runs this
    python -m tests.bench_uploads --database-url postgresql://.../seeded_db
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time
import wave
from pathlib import Path

import aiohttp

from workers.auth import make_dev_token
from workers.config import DEV_JWT_SECRET

from .relay_process import RelayProcess

DEMO_SESSION = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa"
DEMO_CLIENT = "11111111-1111-4111-8111-111111111111"
LIMIT = 10 * 1024 * 1024
MB = 1024 * 1024


def _status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of a process, in bytes."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) * 1024
    return values


def _reset_peak(pid: int) -> None:
    """Writing 5 to clear_refs resets VmHWM to the current VmRSS."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def _wav_of_exactly(path: Path, size: int) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(b"\x01\x00" * ((size - 44) // 2))
    assert path.stat().st_size == size


async def _upload(http: aiohttp.ClientSession, url: str, token: str, source: Path) -> int:
    with source.open("rb") as f:
        data = aiohttp.FormData()
        data.add_field("session_id", DEMO_SESSION)
        data.add_field("file", f, filename="voice.wav", content_type="audio/wav")
        async with http.post(
            url + "/api/chat/upload", data=data, headers={"Authorization": f"Bearer {token}"}
        ) as resp:
            await resp.read()
            return resp.status


async def run(database_url: str, concurrency: int) -> int:
    work = Path(tempfile.mkdtemp(prefix="chat-bench-"))
    source = work / "voice.wav"
    _wav_of_exactly(source, LIMIT)
    relay = RelayProcess(
        database_url,
        secret=DEV_JWT_SECRET,
        DATA_DIR=work / "data",
        STORAGE_BACKEND="local",
        REDIS_URL="",
    )
    proc, url = relay.proc, relay.url
    try:
        await relay.ready(30)
        token = make_dev_token(secret=DEV_JWT_SECRET, user_id=DEMO_CLIENT, role="client")
        # Warm-up with small files: the pool's connections and lazy imports are not uploads.
        small = work / "small.wav"
        _wav_of_exactly(small, 64 * 1024)
        async with aiohttp.ClientSession() as http:
            await asyncio.gather(*(_upload(http, url, token, small) for _ in range(concurrency)))
        warm = _status(proc.pid)["VmRSS"]
        _reset_peak(proc.pid)
        before = _status(proc.pid)["VmRSS"]
        sampled = before
        done = asyncio.Event()

        async def sample() -> None:
            nonlocal sampled
            while not done.is_set():
                sampled = max(sampled, _status(proc.pid)["VmRSS"])
                await asyncio.sleep(0.005)

        sampler = asyncio.create_task(sample())
        started = time.perf_counter()
        async with aiohttp.ClientSession() as http:
            statuses = await asyncio.gather(
                *(_upload(http, url, token, source) for _ in range(concurrency))
            )
        elapsed = time.perf_counter() - started
        done.set()
        await sampler
        after = _status(proc.pid)
    finally:
        relay.stop()
        shutil.rmtree(work, ignore_errors=True)
    peak = max(after["VmHWM"], sampled)
    ok = statuses.count(201)
    print(
        f"{concurrency} concurrent uploads of {LIMIT // MB} MB: {ok}/{concurrency} accepted "
        f"in {elapsed:.2f} s ({concurrency * LIMIT / MB / elapsed:.0f} MB/s)\n"
        f"server RSS: {warm / MB:.1f} MB after warm-up, {before / MB:.1f} MB before, "
        f"peak {peak / MB:.1f} MB "
        f"(+{(peak - before) / MB:.1f} MB for {concurrency * LIMIT / MB:.0f} MB uploaded), "
        f"{after['VmRSS'] / MB:.1f} MB after",
        flush=True,
    )
    return 0 if ok == concurrency else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", required=True, help="a migrated, seeded database")
    parser.add_argument("--concurrency", type=int, default=10)
    args = parser.parse_args()
    raise SystemExit(asyncio.run(run(args.database_url, args.concurrency)))


if __name__ == "__main__":
    main()
