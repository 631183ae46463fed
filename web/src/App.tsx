import { useEffect, useMemo, useState } from 'react';
import { ChatClient, decodeToken } from '@consult-chat/client';
import { Dashboard } from './components/Dashboard';
import { SignIn } from './components/SignIn';

const STORE_KEY = 'chat-console-token';

/** The token from Supabase Auth's redirect (#access_token=...), else one remembered on
 *  this device at the user's request. The fragment is removed from the address bar. */
function initialToken(): string | null {
  const hash = new URLSearchParams(window.location.hash.replace(/^#/, ''));
  const fromHash = hash.get('access_token');
  if (fromHash) {
    history.replaceState(null, '', window.location.pathname + window.location.search);
    return fromHash;
  }
  return localStorage.getItem(STORE_KEY);
}

function usable(token: string | null): string | null {
  if (!token) return null;
  try {
    const claims = decodeToken(token);
    return claims.exp * 1000 > Date.now() ? token : null;
  } catch {
    return null;
  }
}

export function App() {
  const [token, setToken] = useState<string | null>(() => usable(initialToken()));
  const client = useMemo(() => (token ? new ChatClient({ url: window.location.origin, token }) : null), [token]);
  useEffect(() => () => client?.close(), [client]);

  if (!client) {
    return (
      <SignIn
        onSignIn={(t, remember) => {
          if (remember) localStorage.setItem(STORE_KEY, t);
          setToken(t);
        }}
      />
    );
  }
  return (
    <Dashboard
      client={client}
      onSignOut={() => {
        localStorage.removeItem(STORE_KEY);
        setToken(null);
      }}
    />
  );
}
