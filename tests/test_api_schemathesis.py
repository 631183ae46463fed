"""schemathesis against the live app over TCP: every path of /api/openapi.json, all checks,
with a participant's token (the demo client of supabase/seed.sql, whose ids the document
uses as examples). No 5xx; every response conforms to the document."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

import asyncpg
import pytest
from aiohttp.test_utils import TestServer

from workers.api.models import DEMO_CLIENT
from workers.api.registry import registry_of
from workers.app import create_app
from workers.config import NO_LIMIT

from .conftest import ROOT, Users, settings_for

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
MAX_EXAMPLES = 100  # per operation and phase: about 1700 cases in 15 s
SEED = 20261124  # reproducible runs; change it to explore elsewhere

CONFIG = """
[generation]
max-examples = {max_examples}
database = "none"

# Valid JSON may still break a rule the schema cannot express (the caller must be among
# the participants, before_id must be a message of this session): 422, as documented.
# Uploads: random bytes are rarely an accepted file type (415); a random signature is 403.
[checks.positive_data_acceptance]
expected-statuses = ["2xx", 401, 403, 404, 409, 415, 422]

[auth.openapi.bearerAuth]
bearer = "{token}"
"""


@pytest.mark.timeout(180)
async def test_schemathesis_finds_no_server_error_and_no_drift_from_the_document(
    database_url: str,
    superuser: asyncpg.Connection,
    users: Users,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    await superuser.execute((ROOT / "supabase" / "seed.sql").read_text())
    config = tmp_path / "schemathesis.toml"
    config.write_text(
        CONFIG.format(max_examples=MAX_EXAMPLES, token=users.token(DEMO_CLIENT, "client"))
    )
    # Rate limits off: the fuzzer sends far faster than any user may (the database's
    # hourly session limit too, for the connections this app opens).
    dbname = await superuser.fetchval("select current_database()")
    await superuser.execute(f'alter database "{dbname}" set chat.session_create_limit = 0')
    app = create_app(
        settings_for(
            database_url,
            data_dir=tmp_path / "data",
            message_bucket=NO_LIMIT,
            session_create_bucket=NO_LIMIT,
            api_bucket=NO_LIMIT,
        )
    )
    operations = len(registry_of(app).routes)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    try:
        proc = await asyncio.create_subprocess_exec(
            str(SCHEMATHESIS),
            "--config-file",
            str(config),
            "run",
            f"http://127.0.0.1:{server.port}/api/openapi.json",
            "--checks",
            "all",
            "--seed",
            str(SEED),
            "--workers",
            "1",
            "--no-color",
            cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await asyncio.wait_for(proc.communicate(), timeout=150)
    finally:
        await server.close()
        await superuser.execute(f'alter database "{dbname}" reset chat.session_create_limit')
    text = output.decode(errors="replace")
    assert proc.returncode == 0, text[-6000:]
    cases = re.search(r"(\d+) generated, (\d+) passed", text)
    assert cases is not None, text[-3000:]
    assert f"Tested: {operations}" in text  # every operation of the document
    assert int(cases[1]) >= 500
    with capsys.disabled():
        print(f"\nschemathesis: {cases[0]} (all checks, {operations} operations)", flush=True)
