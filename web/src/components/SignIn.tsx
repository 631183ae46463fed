import { useState, type FormEvent } from 'react';
import { decodeToken } from '@consult-chat/client';

export function SignIn({ onSignIn }: { onSignIn: (token: string, remember: boolean) => void }) {
  const [value, setValue] = useState('');
  const [remember, setRemember] = useState(false);
  const [error, setError] = useState<string | null>(null);

  function submit(e: FormEvent) {
    e.preventDefault();
    const token = value.trim();
    try {
      const claims = decodeToken(token);
      if (claims.exp * 1000 <= Date.now()) throw new Error('This token has expired.');
      onSignIn(token, remember);
    } catch (err) {
      setError(err instanceof Error && err.message.includes('expired') ? err.message : 'That is not an access token.');
    }
  }

  return (
    <main className="signin">
      <h1>Consultation chat</h1>
      <p>Sign in with a Supabase access token (or open a link printed by <code>scripts/dev</code>).</p>
      <form onSubmit={submit}>
        <label htmlFor="token">Access token</label>
        <textarea id="token" rows={4} value={value} onChange={(e) => setValue(e.target.value)} spellCheck={false} required />
        <label className="check">
          <input type="checkbox" checked={remember} onChange={(e) => setRemember(e.target.checked)} /> Remember on this device
        </label>
        {error && <p role="alert" className="error">{error}</p>}
        <button type="submit">Sign in</button>
      </form>
    </main>
  );
}
