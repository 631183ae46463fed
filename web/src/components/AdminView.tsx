// The admin view: live statistics refreshed every 5 s (/health's chat_socket counters and
// the monitoring figures) and the audit log with its filters. Admins only: the server
// refuses everyone else (403), this view is merely not offered to them.
import { useCallback, useEffect, useState, type FormEvent } from 'react';
import { toInfo, type ChatClient, type Report } from '@consult-chat/client';
import { dateTime, explain } from '../format';

type Json = Record<string, unknown>;
const REFRESH_MS = 5000;

function num(v: unknown): string {
  return typeof v === 'number' ? String(Math.round(v * 100) / 100) : '–';
}

export function AdminView({ client }: { client: ChatClient }) {
  const [health, setHealth] = useState<Json | null>(null);
  const [mon, setMon] = useState<Json | null>(null);
  const [updated, setUpdated] = useState<string>('');
  const [error, setError] = useState<string | null>(null);
  const [filters, setFilters] = useState({ action: '', session_id: '', user_id: '', since: '' });
  const [logs, setLogs] = useState<{ logs: Json[]; total: number } | null>(null);

  const load = useCallback(async () => {
    try {
      const [h, m] = await Promise.all([client.api.health(), client.api.monitoring()]);
      setHealth(h);
      setMon(m);
      setUpdated(new Date().toLocaleTimeString());
      setError(null);
    } catch (e) {
      setError(explain(toInfo(e)));
    }
  }, [client]);

  useEffect(() => {
    void load();
    const t = setInterval(() => void load(), REFRESH_MS);
    return () => clearInterval(t);
  }, [load]);

  const loadAudit = useCallback(
    async (e?: FormEvent) => {
      e?.preventDefault();
      try {
        const f = Object.fromEntries(Object.entries(filters).filter(([, v]) => v)) as Record<string, string>;
        if (f.since) f.since = new Date(f.since).toISOString();
        setLogs(await client.api.audit({ ...f, limit: 50 }));
      } catch (err) {
        setError(explain(toInfo(err)));
      }
    },
    [client, filters],
  );

  useEffect(() => {
    void loadAudit();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);

  // ---------------------------------------------------------------- the report queue
  const [reports, setReports] = useState<Report[] | null>(null);
  const [choice, setChoice] = useState<Record<string, 'dismiss' | 'redact' | 'suspend'>>({});
  const [done, setDone] = useState<string | null>(null);
  const loadReports = useCallback(async () => {
    try {
      setReports((await client.api.reports({ status: 'open', limit: 50 })).reports);
    } catch (err) {
      setError(explain(toInfo(err)));
    }
  }, [client]);
  useEffect(() => {
    void loadReports();
  }, [loadReports]);
  const moderate = useCallback(
    async (what: string, run: () => Promise<unknown>) => {
      try {
        await run();
        setDone(what);
        await loadReports();
      } catch (err) {
        setError(explain(toInfo(err)));
      }
    },
    [loadReports],
  );

  const socket = (health?.chat_socket ?? {}) as Json;
  const throughput = (mon?.message_throughput ?? {}) as Json;
  const errorRate = (mon?.error_rate ?? {}) as Json;
  const uploads = (mon?.uploads ?? {}) as Json;
  const lastHour = (uploads.last_hour ?? {}) as Json;

  const stats: [string, string][] = [
    ['Service', String(health?.status ?? '–')],
    ['Active connections', num(socket.active_connections)],
    ['Active sessions', num(socket.active_sessions)],
    ['Typing sessions', num(socket.typing_sessions)],
    ['Connections since start', num(socket.total_socket_connections)],
    ['Messages, last minute', num(throughput.last_minute)],
    ['Messages, last hour', num(throughput.last_hour)],
    ['Uploads, last hour', num(lastHour.count)],
    ['Error rate, last hour', num(errorRate.rate ?? errorRate.error_rate)],
  ];

  return (
    <main className="admin" aria-label="Admin">
      <section aria-labelledby="stats-h">
        <h2 id="stats-h">Live statistics</h2>
        <p className="muted" role="status" aria-label="Last update">
          Updated {updated || '…'} (every 5 s)
        </p>
        {error && <p role="alert" className="error">{error}</p>}
        <dl className="stats" aria-label="Statistics">
          {stats.map(([k, v]) => (
            <div key={k} className="stat">
              <dt>{k}</dt>
              <dd data-stat={k}>{v}</dd>
            </div>
          ))}
        </dl>
      </section>
      <section aria-labelledby="reports-h">
        <h2 id="reports-h">Reports</h2>
        <p className="muted" role="status" aria-label="Moderation result">
          {done ?? `${reports?.length ?? 0} open`}
        </p>
        <button onClick={() => void loadReports()}>Refresh reports</button>
        <ul aria-label="Open reports" className="reports">
          {(reports ?? []).map((r) => (
            <li key={r.id} aria-label={`Report: ${r.category}`}>
              <p>
                <strong>{r.category.replace(/_/g, ' ')}</strong> {r.reporter_id ? '' : '(contact filter) '}
                {dateTime(r.created_at)}
              </p>
              <blockquote>{r.message?.deleted ? '(removed)' : (r.message?.content ?? `[${r.message?.type ?? 'message'}]`)}</blockquote>
              {r.note && <p className="muted">{r.note}</p>}
              <label>
                Action{' '}
                <select
                  value={choice[r.id] ?? 'dismiss'}
                  onChange={(e) => setChoice({ ...choice, [r.id]: e.target.value as 'dismiss' | 'redact' | 'suspend' })}
                >
                  <option value="dismiss">Dismiss</option>
                  <option value="redact">Remove the message</option>
                  <option value="suspend">Suspend the sender</option>
                </select>
              </label>{' '}
              <button onClick={() => void moderate('Report resolved.', () => client.api.resolveReport(r.id, choice[r.id] ?? 'dismiss'))}>
                Resolve
              </button>{' '}
              {r.message?.sender_id && (
                <button
                  onClick={() =>
                    void moderate('Sender suspended.', () => client.api.suspendUser(r.message!.sender_id!, `report: ${r.category}`))
                  }
                >
                  Suspend
                </button>
              )}{' '}
              <button onClick={() => void moderate('Session frozen.', () => client.api.freezeSession(r.session_id, true))}>
                Freeze
              </button>
            </li>
          ))}
        </ul>
      </section>
      <section aria-labelledby="audit-h">
        <h2 id="audit-h">Audit log</h2>
        <form className="audit-filters" onSubmit={loadAudit} aria-label="Audit filters">
          {(
            [
              ['action', 'Action', 'e.g. message.created'],
              ['session_id', 'Session id', 'uuid'],
              ['user_id', 'User id', 'uuid'],
            ] as const
          ).map(([key, label, ph]) => (
            <label key={key}>
              {label}{' '}
              <input value={filters[key]} placeholder={ph} onChange={(e) => setFilters({ ...filters, [key]: e.target.value })} />
            </label>
          ))}
          <label>
            Since <input type="datetime-local" value={filters.since} onChange={(e) => setFilters({ ...filters, since: e.target.value })} />
          </label>
          <button type="submit">Apply filters</button>
        </form>
        {logs && (
          <>
            <p className="muted">{logs.total} entries</p>
            <table aria-label="Audit log">
              <thead>
                <tr>
                  <th scope="col">When</th>
                  <th scope="col">Action</th>
                  <th scope="col">Actor</th>
                  <th scope="col">Role</th>
                  <th scope="col">Session</th>
                </tr>
              </thead>
              <tbody>
                {logs.logs.map((l) => (
                  <tr key={String(l.id)}>
                    <td>{dateTime(String(l.created_at))}</td>
                    <td>{String(l.action)}</td>
                    <td>{l.actor_id ? String(l.actor_id).slice(0, 8) : '–'}</td>
                    <td>{String(l.actor_role ?? '')}</td>
                    <td>{l.session_id ? String(l.session_id).slice(0, 8) : '–'}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </>
        )}
      </section>
    </main>
  );
}
