"""Token verification: what Supabase Auth issues is accepted, everything else refused."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import jwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from workers.auth import TokenVerifier, make_dev_token
from workers.errors import AuthError

from .conftest import SECRET

USER = uuid.UUID("11111111-1111-4111-8111-111111111111")


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {
        "sub": str(USER),
        "aud": "authenticated",
        "role": "authenticated",
        "iat": now,
        "exp": now + 600,
        "email": "ana@example.com",
        "app_metadata": {"role": "reader"},
        "user_metadata": {"full_name": "Ana Reader"},
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


@pytest.fixture
def verifier() -> TokenVerifier:
    return TokenVerifier(jwt_secret=SECRET, jwks_url=None)


async def test_valid_hs256_token_gives_principal(verifier: TokenVerifier) -> None:
    principal = await verifier.verify(jwt.encode(claims(), SECRET, algorithm="HS256"))
    assert principal.user_id == USER
    assert principal.app_role == "reader"
    assert principal.name == "Ana Reader"


async def test_bearer_prefix_is_accepted(verifier: TokenVerifier) -> None:
    token = jwt.encode(claims(), SECRET, algorithm="HS256")
    assert (await verifier.verify(f"Bearer {token}")).user_id == USER


async def test_dev_token_round_trips(verifier: TokenVerifier) -> None:
    token = make_dev_token(secret=SECRET, user_id=USER, role="admin", name="Root")
    principal = await verifier.verify(token)
    assert principal.is_admin
    assert principal.name == "Root"


def _unsigned(payload: dict[str, Any]) -> str:
    def b64(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(payload)}."


@pytest.mark.parametrize(
    ("make", "code"),
    [
        (lambda: _unsigned(claims()), "invalid_token"),
        (lambda: jwt.encode(claims(exp=int(time.time()) - 3600), SECRET), "token_expired"),
        (lambda: jwt.encode(claims(), "another-secret-another-secret-0123456789"), "invalid_token"),
        (lambda: jwt.encode(claims(aud="other"), SECRET), "invalid_token"),
        (lambda: jwt.encode(claims(aud=None), SECRET), "invalid_token"),
        (lambda: jwt.encode(claims(exp=None), SECRET), "invalid_token"),
        (lambda: jwt.encode(claims(sub="not-a-uuid"), SECRET), "invalid_token"),
        (lambda: jwt.encode(claims(sub=None), SECRET), "invalid_token"),
        (lambda: jwt.encode(claims(role="service_role"), SECRET), "invalid_token"),
        (lambda: jwt.encode(claims(), SECRET * 2, algorithm="HS512"), "invalid_token"),
        (lambda: "not.a.jwt", "invalid_token"),
        (lambda: "", "missing_token"),
    ],
    ids=[
        "alg-none",
        "expired",
        "wrong-secret",
        "wrong-audience",
        "no-audience",
        "no-exp",
        "sub-not-uuid",
        "no-sub",
        "service-role-key",
        "hs512",
        "garbage",
        "empty",
    ],
)
async def test_bad_tokens_are_refused(verifier: TokenVerifier, make: Any, code: str) -> None:
    with pytest.raises(AuthError) as info:
        await verifier.verify(make())
    assert info.value.status == 401
    assert info.value.code == code


async def test_user_metadata_role_never_grants_admin(verifier: TokenVerifier) -> None:
    token = jwt.encode(
        claims(app_metadata={}, user_metadata={"role": "admin", "full_name": "Mallory"}), SECRET
    )
    principal = await verifier.verify(token)
    assert principal.app_role == "client"
    assert not principal.is_admin


async def test_unknown_app_role_is_treated_as_client(verifier: TokenVerifier) -> None:
    principal = await verifier.verify(jwt.encode(claims(app_metadata={"role": "god"}), SECRET))
    assert principal.app_role == "client"


async def test_name_falls_back_to_email_local_part(verifier: TokenVerifier) -> None:
    principal = await verifier.verify(jwt.encode(claims(user_metadata={}), SECRET))
    assert principal.name == "ana"


# ---------------------------------------------------------------- JWKS (ES256, RS256)


class JwksServer:
    def __init__(self) -> None:
        self.ec_key = ec.generate_private_key(ec.SECP256R1())
        self.rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.requests = 0

    def jwks(self) -> dict[str, Any]:
        ec_jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self.ec_key.public_key()))
        ec_jwk.update(kid="ec-1", alg="ES256", use="sig")
        rsa_jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.rsa_key.public_key()))
        rsa_jwk.update(kid="rsa-1", alg="RS256", use="sig")
        return {"keys": [ec_jwk, rsa_jwk]}

    async def handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        return web.json_response(self.jwks())


@pytest.fixture
async def jwks() -> AsyncIterator[tuple[JwksServer, str]]:
    server = JwksServer()
    app = web.Application()
    app.router.add_get("/auth/v1/.well-known/jwks.json", server.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield server, f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def test_es256_token_verified_through_jwks(jwks: tuple[JwksServer, str]) -> None:
    server, base = jwks
    verifier = TokenVerifier(jwt_secret=None, jwks_url=base + "/auth/v1/.well-known/jwks.json")
    token = jwt.encode(claims(), server.ec_key, algorithm="ES256", headers={"kid": "ec-1"})
    assert (await verifier.verify(token)).user_id == USER
    # Keys are cached: a second token does not fetch the JWKS again.
    assert (await verifier.verify(token)).user_id == USER
    assert server.requests == 1


async def test_rs256_token_verified_through_jwks(jwks: tuple[JwksServer, str]) -> None:
    server, base = jwks
    verifier = TokenVerifier(jwt_secret=SECRET, jwks_url=base + "/auth/v1/.well-known/jwks.json")
    token = jwt.encode(claims(), server.rsa_key, algorithm="RS256", headers={"kid": "rsa-1"})
    assert (await verifier.verify(token)).app_role == "reader"
    # The legacy secret keeps working beside the signing keys.
    assert (await verifier.verify(jwt.encode(claims(), SECRET))).user_id == USER


async def test_token_signed_by_unknown_key_is_refused(jwks: tuple[JwksServer, str]) -> None:
    _, base = jwks
    verifier = TokenVerifier(jwt_secret=None, jwks_url=base + "/auth/v1/.well-known/jwks.json")
    stranger = ec.generate_private_key(ec.SECP256R1())
    forged = jwt.encode(claims(), stranger, algorithm="ES256", headers={"kid": "ec-1"})
    with pytest.raises(AuthError):
        await verifier.verify(forged)
    unknown_kid = jwt.encode(claims(), stranger, algorithm="ES256", headers={"kid": "nope"})
    with pytest.raises(AuthError):
        await verifier.verify(unknown_kid)


async def test_hs256_refused_when_only_jwks_is_configured(jwks: tuple[JwksServer, str]) -> None:
    _, base = jwks
    verifier = TokenVerifier(jwt_secret=None, jwks_url=base + "/auth/v1/.well-known/jwks.json")
    with pytest.raises(AuthError, match="algorithm"):
        await verifier.verify(jwt.encode(claims(), SECRET))


async def test_unreachable_jwks_is_a_401_not_a_crash() -> None:
    verifier = TokenVerifier(jwt_secret=None, jwks_url="http://127.0.0.1:9/jwks.json")
    key = ec.generate_private_key(ec.SECP256R1())
    token = jwt.encode(claims(), key, algorithm="ES256", headers={"kid": "ec-1"})
    with pytest.raises(AuthError) as info:
        await verifier.verify(token)
    assert info.value.code == "jwks_unavailable"
