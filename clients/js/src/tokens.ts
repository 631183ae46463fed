// Reading (never verifying: the server does) the claims of an access token.
export interface TokenClaims {
  sub: string;
  exp: number;
  email?: string;
  app_metadata?: { role?: string };
  user_metadata?: { full_name?: string; name?: string };
}

export function decodeToken(token: string): TokenClaims {
  const part = token.split('.')[1];
  if (!part) throw new Error('not a JWT');
  const b64 = part.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(part.length / 4) * 4, '=');
  const json =
    typeof atob === 'function'
      ? decodeURIComponent(
          Array.from(atob(b64), (c) => '%' + c.charCodeAt(0).toString(16).padStart(2, '0')).join(''),
        )
      : Buffer.from(b64, 'base64').toString('utf8');
  const claims = JSON.parse(json) as TokenClaims;
  if (typeof claims.sub !== 'string' || typeof claims.exp !== 'number') throw new Error('token lacks sub or exp');
  return claims;
}

export function roleOf(claims: TokenClaims): string {
  return claims.app_metadata?.role ?? 'client';
}

export function nameOf(claims: TokenClaims): string {
  return claims.user_metadata?.full_name ?? claims.user_metadata?.name ?? claims.email?.split('@')[0] ?? 'user';
}
