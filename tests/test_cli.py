"""python -m workers token prints a token the service accepts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from workers.auth import TokenVerifier

from .conftest import SECRET

ROOT = Path(__file__).resolve().parent.parent


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "workers", *args],
        cwd=ROOT,
        env={"JWT_SECRET": SECRET, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=30,
    )


async def test_token_command_prints_a_verifiable_token() -> None:
    result = _run("token", "--user", "22222222-2222-4222-8222-222222222222", "--role", "reader")
    assert result.returncode == 0, result.stderr
    principal = await TokenVerifier(jwt_secret=SECRET, jwks_url=None).verify(result.stdout.strip())
    assert str(principal.user_id) == "22222222-2222-4222-8222-222222222222"
    assert principal.app_role == "reader"


def test_token_command_refuses_a_bad_user_id() -> None:
    result = _run("token", "--user", "nobody")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
