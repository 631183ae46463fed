"""Fixtures: a real PostgreSQL database per test run, migrated by the Supabase CLI.

``scripts/test`` passes CHAT_TEST_TEMPLATE_URL, a database it already migrated; each run
copies it (CREATE DATABASE ... TEMPLATE) and drops the copy at the end. Run alone,
``pytest`` prepares the template itself with ``scripts/db-setup``.
"""

from __future__ import annotations

import os
import subprocess
import urllib.parse
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import pytest

from workers.auth import Principal, make_dev_token, principal_from_claims
from workers.config import Settings
from workers.db import Database

ROOT = Path(__file__).resolve().parent.parent
SECRET = "test-secret-for-pytest-only-0123456789abcdef"
DEFAULT_TEMPLATE = "postgresql://postgres@127.0.0.1:5432/chat_pytest_template"


def _with_db(url: str, name: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path="/" + name))


@pytest.fixture(scope="session")
def template_url() -> str:
    url = os.environ.get("CHAT_TEST_TEMPLATE_URL")
    if url:
        return url
    subprocess.run([str(ROOT / "scripts" / "db-setup"), DEFAULT_TEMPLATE], check=True)
    return DEFAULT_TEMPLATE


@asynccontextmanager
async def database_from_template(template_url: str, prefix: str) -> AsyncIterator[str]:
    """A database of its own, copied from the migrated template and dropped at the end."""
    template = urllib.parse.urlsplit(template_url).path.lstrip("/")
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(_with_db(template_url, "postgres"))
    try:
        await admin.execute(f'create database "{name}" template "{template}"')
        yield _with_db(template_url, name)
    finally:
        await admin.execute(f'drop database if exists "{name}" with (force)')
        await admin.close()


@pytest.fixture(scope="session")
async def database_url(template_url: str) -> AsyncIterator[str]:
    async with database_from_template(template_url, "chat_pytest") as url:
        yield url


@pytest.fixture(scope="session")
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url, max_size=5)
    await database.open()
    yield database
    await database.close()


@pytest.fixture(scope="session")
async def superuser(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A direct connection as the table owner, for arranging data."""
    conn = await asyncpg.connect(database_url)
    yield conn
    await conn.close()


def settings_for(database_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {"database_url": database_url, "jwt_secret": SECRET}
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


class Users:
    """Creates users in auth.users and tokens for them."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def create(self, role: str = "client", name: str | None = None) -> uuid.UUID:
        uid = uuid.uuid4()
        await self._conn.execute(
            "insert into auth.users (id, email, raw_app_meta_data, raw_user_meta_data) "
            "values ($1, $2, jsonb_build_object('role', $3::text), "
            "jsonb_build_object('full_name', $4::text))",
            uid,
            f"{role}-{uid.hex[:8]}@example.com",
            role,
            name or f"{role.title()} {uid.hex[:4]}",
        )
        return uid

    @staticmethod
    def token(uid: uuid.UUID, role: str = "client", **kwargs: object) -> str:
        return make_dev_token(secret=SECRET, user_id=uid, role=role, **kwargs)  # type: ignore[arg-type]

    @staticmethod
    def principal(uid: uuid.UUID, role: str = "client") -> Principal:
        return principal_from_claims(
            {
                "sub": str(uid),
                "role": "authenticated",
                "aud": "authenticated",
                "email": f"{role}@example.com",
                "app_metadata": {"role": role},
                "user_metadata": {},
            }
        )


@pytest.fixture
def users(superuser: asyncpg.Connection) -> Users:
    return Users(superuser)
