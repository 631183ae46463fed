"""Settings: a bad or missing value stops start-up with a message naming the variable."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from workers.config import Bucket, Settings, SettingsError

GOOD = {"JWT_SECRET": "x" * 40}


def test_defaults_for_local_development() -> None:
    settings = Settings.from_env(GOOD)
    assert settings.port == 5001
    assert settings.database_url.startswith("postgresql://")
    assert settings.storage_backend == "local"
    assert settings.redis_url is None
    assert settings.cors_origins == ("*",)
    assert settings.jwks_url is None


def test_jwks_url_is_derived_from_supabase_url() -> None:
    settings = Settings.from_env({"SUPABASE_URL": "https://abc.supabase.co/"})
    assert settings.jwks_url == "https://abc.supabase.co/auth/v1/.well-known/jwks.json"


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"PORT": "http"}, "PORT"),
        ({"PORT": "70000"}, "PORT"),
        ({"PORT": "0"}, "PORT"),
        ({"DATABASE_URL": "mysql://x/y"}, "DATABASE_URL"),
        ({"REDIS_URL": "http://localhost:6379"}, "REDIS_URL"),
        ({"SUPABASE_URL": "not a url"}, "SUPABASE_URL"),
        ({"STORAGE_BACKEND": "s3"}, "STORAGE_BACKEND"),
        ({"CORS_ORIGINS": "example.com"}, "CORS_ORIGINS"),
        ({"TYPING_TIMEOUT": "-1"}, "TYPING_TIMEOUT"),
        ({"LOG_LEVEL": "chatty"}, "LOG_LEVEL"),
        ({"MESSAGE_RATE": "fast"}, "MESSAGE_RATE"),
        ({"MESSAGE_RATE": "-1"}, "MESSAGE_RATE"),
        ({"MESSAGE_BURST": "0"}, "MESSAGE_BURST"),
        ({"CONNECT_BURST_PER_IP": "2.5"}, "CONNECT_BURST_PER_IP"),
    ],
)
def test_bad_value_names_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(SettingsError) as info:
        Settings.from_env({**GOOD, **env})
    assert str(info.value).startswith(variable + ":")


def test_a_bucket_is_read_from_its_rate_and_burst_variables() -> None:
    """Each token bucket is one setting read from two variables; either may be left out."""
    settings = Settings.from_env({**GOOD, "MESSAGE_RATE": "0.5", "API_BURST": "7"})
    assert settings.message_bucket == Bucket(rate=0.5, burst=20)
    assert settings.api_bucket == Bucket(rate=20.0, burst=7)
    assert settings.connect_bucket_per_ip == Bucket(rate=5.0, burst=50)


def test_missing_jwt_secret_and_supabase_url_is_refused() -> None:
    with pytest.raises(SettingsError, match=r"^JWT_SECRET:"):
        Settings.from_env({})


def test_supabase_storage_needs_service_role_key() -> None:
    env = {**GOOD, "STORAGE_BACKEND": "supabase", "SUPABASE_URL": "https://abc.supabase.co"}
    with pytest.raises(SettingsError, match=r"^SUPABASE_SERVICE_ROLE_KEY:"):
        Settings.from_env(env)
    ok = Settings.from_env({**env, "SUPABASE_SERVICE_ROLE_KEY": "key"})
    assert ok.storage_backend == "supabase"


def test_cors_origins_are_split_and_trimmed() -> None:
    settings = Settings.from_env(
        {**GOOD, "CORS_ORIGINS": "https://app.example.com/, http://localhost:5173"}
    )
    assert settings.cors_origins == ("https://app.example.com", "http://localhost:5173")


def test_relay_refuses_to_start_with_bad_settings() -> None:
    root = Path(__file__).resolve().parent.parent
    result = subprocess.run(
        [sys.executable, "-m", "workers", "relay"],
        cwd=root,
        env={"PORT": "not-a-port", "JWT_SECRET": "x" * 40, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "PORT" in result.stderr
    assert "Traceback" not in result.stderr


def test_short_jwt_secret_is_accepted_with_a_warning() -> None:
    settings = Settings.from_env({"JWT_SECRET": "short-secret"})
    assert settings.jwt_secret == "short-secret"
    assert any("shorter than 32" in w for w in settings.warnings())
    assert Settings.from_env(GOOD).warnings() == []
