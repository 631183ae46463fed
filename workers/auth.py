"""JWT verification for Supabase Auth tokens.

HS256 with the project's JWT secret (Supabase's legacy keys), and ES256/RS256 through the
project's JWKS (``SUPABASE_URL/auth/v1/.well-known/jwks.json``), keys cached. Checks the
signature, ``exp``, ``aud=authenticated``, ``role=authenticated`` (a token without a role
claim is refused: it is not a user token) and, when an issuer is configured, ``iss``;
refuses ``alg: none`` and any algorithm not configured. The app role comes from
``app_metadata.role``, never from ``user_metadata``.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import jwt

from .errors import AuthError

APP_ROLES = ("client", "reader", "admin", "super_admin")
ADMIN_ROLES = frozenset({"admin", "super_admin"})
AUDIENCE = "authenticated"
_ASYMMETRIC = ("ES256", "RS256")
_LEEWAY_SECONDS = 10


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request or socket acts as. One lives as long as each connection, so it keeps
    only what is used: the claims as the database receives them (``request.jwt.claims``,
    serialized once per token rather than once per statement) and their expiry, not the
    decoded claims dict (about 1.8 KB per idle socket)."""

    user_id: uuid.UUID
    app_role: str
    name: str
    claims_text: str = field(compare=False, repr=False)
    expires_at: float = 0.0

    @property
    def is_admin(self) -> bool:
        return self.app_role in ADMIN_ROLES

    @property
    def claims(self) -> dict[str, Any]:
        """The token's claims, decoded again (only for the rare caller that needs them)."""
        return json.loads(self.claims_text)  # type: ignore[no-any-return]

    def claims_json(self) -> str:
        return self.claims_text


def principal_from_claims(claims: dict[str, Any]) -> Principal:
    sub = claims.get("sub")
    try:
        user_id = uuid.UUID(str(sub))
    except (ValueError, TypeError):
        raise AuthError("token has no user (sub is not a UUID)") from None
    if claims.get("role") != "authenticated":
        raise AuthError("token is not a user token (role must be authenticated)")
    app_meta = claims.get("app_metadata")
    role = app_meta.get("role") if isinstance(app_meta, dict) else None
    app_role = role if role in APP_ROLES else "client"
    return Principal(
        user_id=user_id,
        app_role=app_role,
        name=display_name(claims),
        claims_text=json.dumps(claims, separators=(",", ":"), default=str),
        expires_at=float(claims.get("exp", 0) or 0),
    )


def display_name(claims: dict[str, Any]) -> str:
    """``user_metadata.full_name`` (or ``name``), else the email's local part."""
    meta = claims.get("user_metadata")
    if isinstance(meta, dict):
        for key in ("full_name", "name"):
            value = meta.get(key)
            if isinstance(value, str) and value.strip():
                return value.strip()[:100]
    email = claims.get("email")
    if isinstance(email, str) and "@" in email:
        return email.split("@", 1)[0]
    return "user"


class TokenVerifier:
    """Verifies access tokens. Build once; share between requests."""

    def __init__(
        self, *, jwt_secret: str | None, jwks_url: str | None, issuer: str | None = None
    ) -> None:
        if not jwt_secret and not jwks_url:
            raise ValueError("TokenVerifier needs a JWT secret or a JWKS URL")
        self._secret = jwt_secret
        self._issuer = issuer
        self._jwks = (
            jwt.PyJWKClient(jwks_url, cache_keys=True, lifespan=600, timeout=5)
            if jwks_url
            else None
        )

    async def verify(self, token: str | None) -> Principal:
        if not token or not isinstance(token, str):
            raise AuthError("missing bearer token", code="missing_token")
        token = token.strip()
        if token.lower().startswith("bearer "):
            token = token[7:].strip()
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise AuthError("malformed token") from None
        alg = header.get("alg")
        if alg == "HS256" and self._secret:
            key: Any = self._secret
        elif alg in _ASYMMETRIC and self._jwks is not None:
            key = await self._signing_key(token)
        else:
            raise AuthError(f"token algorithm {str(alg)[:16]!r} is not accepted")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=AUDIENCE,
                issuer=self._issuer,
                leeway=_LEEWAY_SECONDS,
                options={"require": ["exp", "sub", "aud", *(["iss"] if self._issuer else [])]},
            )
        except jwt.ExpiredSignatureError:
            raise AuthError("token has expired", code="token_expired") from None
        except jwt.InvalidAudienceError:
            raise AuthError("token audience must be 'authenticated'") from None
        except jwt.InvalidIssuerError:
            raise AuthError("token issuer is not accepted") from None
        except jwt.MissingRequiredClaimError as exc:
            raise AuthError(f"token lacks the {exc.claim!r} claim") from None
        except jwt.PyJWTError:
            raise AuthError("token signature or claims are invalid") from None
        return principal_from_claims(claims)

    async def _signing_key(self, token: str) -> Any:
        assert self._jwks is not None
        try:
            # PyJWKClient fetches with urllib (blocking) and caches; keep it off the loop.
            signing_key = await asyncio.to_thread(self._jwks.get_signing_key_from_jwt, token)
        except jwt.PyJWKClientConnectionError:
            raise AuthError("signing keys are unavailable", code="jwks_unavailable") from None
        except jwt.PyJWTError:
            raise AuthError("token signing key is unknown") from None
        return signing_key.key


def make_dev_token(
    *,
    secret: str,
    user_id: str | uuid.UUID,
    role: str = "client",
    email: str | None = None,
    name: str | None = None,
    expires_in: int = 24 * 3600,
) -> str:
    """An HS256 token shaped like Supabase Auth's, for local development and tests."""
    now = int(time.time())
    uid = str(uuid.UUID(str(user_id)))
    claims: dict[str, Any] = {
        "iss": "http://127.0.0.1:54321/auth/v1",
        "aud": AUDIENCE,
        "sub": uid,
        "role": "authenticated",
        "iat": now,
        "exp": now + expires_in,
        "email": email or f"{role}-{uid[:8]}@example.com",
        "aal": "aal1",
        "session_id": str(uuid.uuid4()),
        "is_anonymous": False,
        "app_metadata": {"provider": "email", "role": role},
        "user_metadata": {"full_name": name} if name else {},
    }
    return jwt.encode(claims, secret, algorithm="HS256")
