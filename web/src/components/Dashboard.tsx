// UnifiedChatDashboard: the list beside the open thread, the connection state, and the
// admin view for admins.
import { useState } from 'react';
import type { ChatClient } from '@consult-chat/client';
import { explain } from '../format';
import { useUnifiedChat } from '@consult-chat/client/react';
import { AdminView } from './AdminView';
import { Composer } from './Composer';
import { SessionList } from './SessionList';
import { Thread } from './Thread';

export function Dashboard({ client, onSignOut }: { client: ChatClient; onSignOut: () => void }) {
  const chat = useUnifiedChat(client);
  const [tab, setTab] = useState<'chat' | 'admin'>('chat');
  const [replyTo, setReplyTo] = useState<string | null>(null);

  return (
    <div className="app">
      <header className="top">
        <h1>Consultation chat</h1>
        <nav aria-label="Views">
          <button aria-pressed={tab === 'chat'} onClick={() => setTab('chat')}>
            Chat
          </button>
          {client.isAdmin && (
            <button aria-pressed={tab === 'admin'} onClick={() => setTab('admin')}>
              Admin
            </button>
          )}
        </nav>
        <span className={`conn ${chat.isConnected ? 'on' : 'off'}`} role="status" aria-label="Connection">
          {chat.isConnected ? 'Connected' : 'Reconnecting…'}
        </span>
        <span className="me">
          {client.userName} <small>({client.role})</small>
        </span>
        <button onClick={onSignOut}>Sign out</button>
      </header>
      {chat.errors.length > 0 && (
        <div className="errors" role="alert">
          {chat.errors.map((e, i) => (
            <p key={i}>
              {explain(e)}{' '}
              <button onClick={() => chat.dismissError(i)} aria-label="Dismiss error">
                ×
              </button>
            </p>
          ))}
        </div>
      )}
      {tab === 'admin' && client.isAdmin ? (
        <AdminView client={client} />
      ) : (
        <div className="main">
          <SessionList chat={chat} />
          <section className="conversation" aria-label="Conversation">
            {chat.activeSession ? (
              <>
                <Thread chat={chat} onReply={setReplyTo} />
                <Composer chat={chat} replyTo={replyTo} onCancelReply={() => setReplyTo(null)} />
              </>
            ) : (
              <p className="empty">Choose a session.</p>
            )}
          </section>
        </div>
      )}
    </div>
  );
}
