"""A database prepared the way scripts/dev prepares it has no pgTAP and none of
the test helpers (which could impersonate any user), and Supabase's linter reports
nothing at warning level on it."""

from __future__ import annotations

import asyncio
import os
import subprocess
import uuid
from pathlib import Path

import asyncpg
import pytest

from .conftest import _with_db

ROOT = Path(__file__).resolve().parent.parent
SUPABASE = ROOT / "node_modules" / ".bin" / "supabase"


@pytest.mark.timeout(180)
async def test_dev_database_has_no_test_helpers_and_lints_clean(template_url: str) -> None:
    name = f"chat_devcheck_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    url = _with_db(template_url, name)
    admin = await asyncpg.connect(_with_db(template_url, "postgres"))
    try:
        # scripts/db-setup runs what scripts/dev runs: platform stand-in and migrations.
        await asyncio.to_thread(
            subprocess.run,
            [str(ROOT / "scripts" / "db-setup"), url, "--seed"],
            check=True,
            capture_output=True,
            timeout=150,
        )
        conn = await asyncpg.connect(url)
        try:
            assert await conn.fetchval("select to_regnamespace('tests')") is None
            assert (
                await conn.fetchval("select count(*) from pg_extension where extname = 'pgtap'")
                == 0
            )
            # Nothing anon may execute outside what the migrations grant it.
            anon_functions = await conn.fetch(
                "select p.oid::regprocedure::text as f from pg_proc as p "
                "join pg_namespace as n on p.pronamespace = n.oid "
                "where n.nspname in ('public', 'chat_private') "
                "and has_function_privilege('anon', p.oid, 'execute')"
            )
            assert [r["f"] for r in anon_functions] == []
        finally:
            await conn.close()
        sslmode = "&" if "?" in url else "?"
        lint = await asyncio.to_thread(
            subprocess.run,
            [
                str(SUPABASE),
                "db",
                "lint",
                "--db-url",
                f"{url}{sslmode}sslmode=disable",
                "--level",
                "warning",
                "--fail-on",
                "warning",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert lint.returncode == 0, lint.stdout + lint.stderr
        assert "No schema errors found" in lint.stdout + lint.stderr
    finally:
        await admin.execute(f'drop database if exists "{name}" with (force)')
        await admin.close()
