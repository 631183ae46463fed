// UnifiedChatList: sessions with unread counts, last message, type, status and an online
// dot per participant; search by text (sessions and messages) and filters.
import { useEffect, useState } from 'react';
import type { SearchHit, SessionStatus, SessionType } from '@consult-chat/client';
import { colorFor, time } from '../format';
import type { UnifiedChat } from '@consult-chat/client/react';

export function SessionList({ chat }: { chat: UnifiedChat }) {
  const [text, setText] = useState('');
  const [hits, setHits] = useState<SearchHit[] | null>(null);
  const { setFilters, client } = chat;

  useEffect(() => {
    const q = text.trim();
    const timer = setTimeout(async () => {
      setFilters((f) => ({ ...f, q: q || undefined }));
      if (!q) return setHits(null);
      try {
        setHits((await client.api.search(q, { limit: 20 })).results);
      } catch (e) {
        chat.reportError(e);
      }
    }, 250);
    return () => clearTimeout(timer);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [text, client, setFilters]);

  return (
    <aside className="sidebar" aria-label="Session list">
      <div className="filters">
        <input
          type="search"
          aria-label="Search"
          placeholder="Search sessions and messages"
          value={text}
          onChange={(e) => setText(e.target.value)}
        />
        <label>
          Type{' '}
          <select
            value={chat.filters.type ?? ''}
            onChange={(e) => setFilters((f) => ({ ...f, type: (e.target.value || undefined) as SessionType | undefined }))}
          >
            <option value="">any</option>
            <option value="booking">booking</option>
            <option value="support">support</option>
            <option value="emergency">emergency</option>
          </select>
        </label>
        <label>
          Status{' '}
          <select
            value={chat.filters.status ?? ''}
            onChange={(e) =>
              setFilters((f) => ({ ...f, status: (e.target.value || undefined) as SessionStatus | undefined }))
            }
          >
            <option value="">any</option>
            <option value="active">active</option>
            <option value="closed">closed</option>
          </select>
        </label>
      </div>
      <ul className="sessions" aria-label="Sessions">
        {chat.sessions.map((s) => {
          const online = new Set(chat.onlineIn(s.id));
          const active = s.id === chat.activeSessionId;
          return (
            <li key={s.id} className={active ? 'active' : ''}>
              <button
                className="session"
                aria-current={active ? 'true' : undefined}
                onClick={() => void chat.joinSession(s.id)}
              >
                <span className="title">{s.title || 'Untitled session'}</span>
                {s.unread_count > 0 && (
                  <span className="unread" aria-label={`${s.unread_count} unread`}>
                    {s.unread_count}
                  </span>
                )}
                <span className={`badge ${s.type}`}>{s.type}</span>
                <span className={`status ${s.status}`}>{s.status}</span>
                <span className="last">
                  {s.last_message ? `${s.last_message.content ?? `[${s.last_message.type}]`}` : 'No messages yet'}
                  {s.last_message && <time dateTime={s.last_message.created_at}> · {time(s.last_message.created_at)}</time>}
                </span>
                <span className="dots">
                  {s.participants
                    .filter((p) => p !== client.userId)
                    .map((p) => (
                      <span
                        key={p}
                        className={`dot ${online.has(p) ? 'online' : 'offline'}`}
                        data-user={p}
                        title={online.has(p) ? 'online' : 'offline'}
                        aria-label={`participant ${p.slice(0, 8)} ${online.has(p) ? 'online' : 'offline'}`}
                        role="img"
                        style={{ borderColor: colorFor(p) }}
                      />
                    ))}
                </span>
              </button>
            </li>
          );
        })}
      </ul>
      {hits && (
        <section aria-label="Search results" className="hits">
          <h2>Messages</h2>
          {hits.length === 0 ? (
            <p>No message matches.</p>
          ) : (
            <ul aria-label="Search results">
              {hits.map((h) => (
                <li key={h.message.id}>
                  <button
                    onClick={() => {
                      void chat.joinSession(h.message.session_id).then(() =>
                        window.dispatchEvent(new CustomEvent('chat:jump', { detail: h.message.id })),
                      );
                    }}
                  >
                    <span className="who">{h.message.sender_name}</span>{' '}
                    {/* The service escapes the text and adds only <mark>. */}
                    <span className="snippet" dangerouslySetInnerHTML={{ __html: safeSnippet(h.snippet) }} />
                  </button>
                </li>
              ))}
            </ul>
          )}
        </section>
      )}
    </aside>
  );
}

/** Defence in depth: keep only <mark> and </mark> from the snippet; everything else is
 *  escaped again. */
function safeSnippet(s: string): string {
  return s
    .replace(/<(?!\/?mark>)/g, '&lt;')
    .replace(/(?<!<\/?mark)>/g, '&gt;');
}
