import { memo, useState } from 'react';
import type { ChatMessage, DeliveryStatus, ReportCategory, ThreadMessage } from '@consult-chat/client';
import { bytes, colorFor, duration, explain, time } from '../format';

const STATUS_LABEL: Record<DeliveryStatus, string> = {
  sending: 'Sending…',
  sent: 'Sent',
  delivered: 'Delivered',
  read: 'Read',
  failed: 'Not sent',
};

interface Props {
  message: ThreadMessage;
  mine: boolean;
  status?: DeliveryStatus;
  parent?: ChatMessage;
  highlighted: boolean;
  onJump: (id: string) => void;
  onReply: (id: string) => void;
  onRetry: (clientMessageId: string) => void;
  onDiscard: (clientMessageId: string) => void;
  onEdit?: (message: ChatMessage, content: string) => void;
  onDelete?: (message: ChatMessage) => void;
  onReport?: (message: ChatMessage, category: ReportCategory) => void;
}

/** How long after sending a sender may edit or delete (the service's EDIT_WINDOW_S default;
 * the server decides, and says so if it has a shorter one). */
export const EDIT_WINDOW_MS = 15 * 60 * 1000;

const CATEGORIES: [ReportCategory, string][] = [
  ['spam', 'Spam'],
  ['harassment', 'Harassment'],
  ['off_platform_contact', 'Asks to talk or pay off the platform'],
  ['inappropriate', 'Inappropriate'],
  ['other', 'Something else'],
];

export const MessageItem = memo(function MessageItem(p: Props) {
  const m = p.message;
  const md = m.metadata ?? {};
  const who = m.sender_name ?? 'System';
  const [editing, setEditing] = useState<string | null>(null);
  const [reporting, setReporting] = useState<ReportCategory | null>(null);
  const editableUntil = new Date(new Date(m.created_at).getTime() + EDIT_WINDOW_MS);
  const changeable =
    p.mine && !m.pending && !m.deleted && m.type !== 'system' && editableUntil.getTime() > Date.now();
  const reportable = !p.mine && !m.pending && !m.deleted && m.type !== 'system' && m.sender_id !== null;
  return (
    <div className={`msg ${p.mine ? 'mine' : ''} ${m.type} ${p.highlighted ? 'highlighted' : ''}`}>
      <header>
        <span className="who" style={{ color: colorFor(m.sender_id ?? 'system') }}>
          {who}
        </span>{' '}
        <time dateTime={m.created_at}>{time(m.created_at)}</time>
      </header>
      {m.reply_to_message_id && (
        <button className="quote" onClick={() => p.onJump(m.reply_to_message_id!)} aria-label="Go to the message this replies to">
          ↪ {p.parent ? `${p.parent.sender_name ?? ''}: ${(p.parent.content ?? `[${p.parent.type}]`).slice(0, 120)}` : 'an earlier message'}
        </button>
      )}
      {editing !== null ? (
        <form
          className="edit"
          onSubmit={(e) => {
            e.preventDefault();
            if (editing.trim()) p.onEdit?.(m, editing);
            setEditing(null);
          }}
        >
          <textarea aria-label="Edited message" value={editing} onChange={(e) => setEditing(e.target.value)} />
          <button type="submit">Save</button>
          <button type="button" onClick={() => setEditing(null)}>
            Cancel
          </button>
        </form>
      ) : (
        <Body message={m} />
      )}
      {!m.deleted && m.type !== 'system' && m.type !== 'text' && m.content && <p className="caption">{m.content}</p>}
      {m.edited_at && !m.deleted && <span className="edited">(edited)</span>}
      {reporting !== null && (
        <form
          className="report"
          onSubmit={(e) => {
            e.preventDefault();
            p.onReport?.(m, reporting);
            setReporting(null);
          }}
        >
          <label>
            Reason
            <select value={reporting} onChange={(e) => setReporting(e.target.value as ReportCategory)}>
              {CATEGORIES.map(([value, label]) => (
                <option key={value} value={value}>
                  {label}
                </option>
              ))}
            </select>
          </label>
          <button type="submit">Send report</button>
          <button type="button" onClick={() => setReporting(null)}>
            Cancel
          </button>
        </form>
      )}
      <footer>
        {p.status && (
          <span className={`state ${p.status}`} aria-label={`Status: ${p.status}`}>
            {STATUS_LABEL[p.status]}
          </span>
        )}
        {m.error && <span className="error">{explain(m.error)}</span>}
        {p.status === 'failed' && m.client_message_id && (
          <>
            <button onClick={() => p.onRetry(m.client_message_id!)}>Retry</button>
            <button onClick={() => p.onDiscard(m.client_message_id!)}>Discard</button>
          </>
        )}
        {!m.pending && m.type !== 'system' && !m.deleted && (
          <button className="reply" onClick={() => p.onReply(m.id)} aria-label={`Reply to ${who}`}>
            Reply
          </button>
        )}
        {changeable && editing === null && (
          <>
            {m.type === 'text' && (
              <button
                onClick={() => setEditing(m.content ?? '')}
                title={`You can edit or delete it until ${editableUntil.toLocaleTimeString()}`}
              >
                Edit
              </button>
            )}
            <button
              onClick={() => p.onDelete?.(m)}
              title={`You can edit or delete it until ${editableUntil.toLocaleTimeString()}`}
            >
              Delete
            </button>
            <span className="window">until {editableUntil.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })}</span>
          </>
        )}
        {reportable && reporting === null && (
          <button onClick={() => setReporting('spam')} aria-label={`Report the message of ${who}`}>
            Report
          </button>
        )}
      </footer>
      {md.file_name && m.type === 'file' && <span className="size">{bytes(md.size_bytes)}</span>}
    </div>
  );
});

function Body({ message: m }: { message: ThreadMessage }) {
  const md = m.metadata ?? {};
  if (m.deleted) {
    const why =
      m.deleted_reason === 'moderator'
        ? 'This message was removed by a moderator.'
        : m.deleted_reason === 'sender'
          ? 'This message was deleted.'
          : "This message was removed with its sender's account.";
    return <p className="tombstone">{why}</p>;
  }
  switch (m.type) {
    case 'image': {
      const w = md.width ?? 240;
      const h = md.height ?? 160;
      const scale = Math.min(1, 240 / w);
      return md.url ? (
        <img src={md.url} alt={md.file_name ?? 'image'} width={Math.round(w * scale)} height={Math.round(h * scale)} loading="lazy" />
      ) : (
        <p>[image]</p>
      );
    }
    case 'audio':
      return (
        <div className="voice">
          <audio controls preload="metadata" src={md.url} aria-label={`Voice message ${duration(md.duration_ms)}`} />
          <span className="duration" aria-label="Duration">
            {duration(md.duration_ms)}
          </span>
        </div>
      );
    case 'file':
      return (
        <p>
          <a href={md.url} download={md.file_name}>
            {md.file_name ?? 'file'}
          </a>
        </p>
      );
    case 'system':
      return <p className="system">{m.content}</p>;
    default:
      return <p className="text">{m.content}</p>;
  }
}
