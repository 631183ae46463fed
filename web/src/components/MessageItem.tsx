import { memo } from 'react';
import type { ChatMessage, DeliveryStatus, ThreadMessage } from '../client';
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
}

export const MessageItem = memo(function MessageItem(p: Props) {
  const m = p.message;
  const md = m.metadata ?? {};
  const who = m.sender_name ?? 'System';
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
      <Body message={m} />
      {m.type !== 'system' && m.type !== 'text' && m.content && <p className="caption">{m.content}</p>}
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
