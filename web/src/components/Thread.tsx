// UnifiedChatThread: messages oldest to newest, virtualized (only what is in view is in
// the DOM), older pages loaded by keyset as you scroll up with the view kept in place,
// replies that quote and jump to their parent, files, voice notes, per-message status,
// typing and presence. Files dropped on it are uploaded.
import { useVirtualizer } from '@tanstack/react-virtual';
import { useCallback, useEffect, useLayoutEffect, useMemo, useRef, useState, type DragEvent } from 'react';
import { toInfo, type ThreadMessage } from '@consult-chat/client';
import { explain } from '../format';
import type { UnifiedChat } from '@consult-chat/client/react';
import { MessageItem } from './MessageItem';

export function Thread({ chat, onReply }: { chat: UnifiedChat; onReply: (id: string) => void }) {
  const { messages, hasOlder, loadOlder, client } = chat;
  const scroller = useRef<HTMLDivElement>(null);
  const [loading, setLoading] = useState(false);
  const [highlight, setHighlight] = useState<string | null>(null);
  const [dragging, setDragging] = useState(false);
  const [notice, setNotice] = useState<string | null>(null);
  const atBottom = useRef(true);
  /** A moderation action: the room hears the change from the server; a refusal is said. */
  const act = useCallback(async (run: () => Promise<unknown>) => {
    try {
      setNotice(null);
      await run();
    } catch (e) {
      setNotice(explain(toInfo(e)));
    }
  }, []);
  const anchor = useRef<string | null>(null);
  const sessionId = chat.activeSessionId;

  const indexOf = useMemo(() => new Map(messages.map((m, i) => [m.id, i])), [messages]);
  const names = useMemo(() => {
    const n = new Map<string, string>();
    for (const m of messages) if (m.sender_id && m.sender_name) n.set(m.sender_id, m.sender_name);
    return n;
  }, [messages]);

  const virtualizer = useVirtualizer({
    count: messages.length,
    getScrollElement: () => scroller.current,
    estimateSize: () => 76,
    overscan: 6,
    getItemKey: (i) => messages[i]?.id ?? i,
  });

  // Newest in view when the thread opens.
  useLayoutEffect(() => {
    atBottom.current = true;
    setHighlight(null);
  }, [sessionId]);

  const last = messages[messages.length - 1];
  useEffect(() => {
    if (!messages.length) return;
    if (anchor.current) {
      // Older messages arrived above: keep the message that was on top where it was.
      const i = indexOf.get(anchor.current);
      anchor.current = null;
      if (i !== undefined) virtualizer.scrollToIndex(i, { align: 'start' });
      return;
    }
    if (atBottom.current || last?.sender_id === client.userId) {
      virtualizer.scrollToIndex(messages.length - 1, { align: 'end' });
    }
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [last?.id, messages.length]);

  const older = useCallback(async () => {
    if (loading || !hasOlder) return;
    setLoading(true);
    anchor.current = messages[0]?.id ?? null;
    try {
      await loadOlder(50);
    } catch (e) {
      chat.reportError(e);
    } finally {
      setLoading(false);
    }
  }, [loading, hasOlder, messages, loadOlder, chat]);

  const onScroll = () => {
    const el = scroller.current;
    if (!el) return;
    atBottom.current = el.scrollHeight - el.scrollTop - el.clientHeight < 40;
    if (el.scrollTop < 150) void older();
  };

  const jumpTo = useCallback(
    async (id: string) => {
      for (let page = 0; page < 100 && !client.message(sessionId!, id) && client.view(sessionId!)?.hasOlder; page++) {
        await loadOlder(100);
      }
      const list = client.view(sessionId!)?.messages ?? [];
      const i = list.findIndex((m) => m.id === id);
      if (i < 0) return;
      atBottom.current = false;
      setHighlight(id);
      requestAnimationFrame(() => {
        virtualizer.scrollToIndex(i, { align: 'center' });
        setTimeout(() => scroller.current?.querySelector<HTMLElement>(`[data-message-id="${id}"]`)?.focus(), 120);
      });
    },
    [client, sessionId, loadOlder, virtualizer],
  );

  useEffect(() => {
    const onJump = (e: Event) => void jumpTo((e as CustomEvent<string>).detail);
    window.addEventListener('chat:jump', onJump);
    return () => window.removeEventListener('chat:jump', onJump);
  }, [jumpTo]);

  function onDrop(e: DragEvent) {
    e.preventDefault();
    setDragging(false);
    for (const file of Array.from(e.dataTransfer.files)) void chat.uploadFile(file, file.name);
  }

  const online = chat.onlineUsers.filter((u) => u !== client.userId);
  const typing = chat.typingUsers;

  return (
    <div
      className={`thread ${dragging ? 'dragging' : ''}`}
      onDragOver={(e) => {
        e.preventDefault();
        setDragging(true);
      }}
      onDragLeave={() => setDragging(false)}
      onDrop={onDrop}
    >
      <div className="thread-head">
        <h2>{chat.activeSession?.title || 'Session'}</h2>
        <span className="online" aria-label="Online">
          {online.length ? `Online: ${online.map((u) => names.get(u) ?? u.slice(0, 8)).join(', ')}` : 'Nobody else online'}
        </span>
      </div>
      <div className="scroller" ref={scroller} onScroll={onScroll} data-testid="thread-scroller">
        {hasOlder && (
          <button className="older" onClick={() => void older()} disabled={loading}>
            {loading ? 'Loading…' : 'Load older messages'}
          </button>
        )}
        <div role="list" aria-label="Messages" style={{ height: virtualizer.getTotalSize(), position: 'relative' }}>
          {virtualizer.getVirtualItems().map((row) => {
            const m: ThreadMessage = messages[row.index];
            const parent = m.reply_to_message_id ? client.message(m.session_id, m.reply_to_message_id) : undefined;
            return (
              <div
                key={row.key}
                data-index={row.index}
                ref={virtualizer.measureElement}
                className="row"
                style={{ transform: `translateY(${row.start}px)` }}
                role="listitem"
                aria-posinset={row.index + 1}
                aria-setsize={messages.length}
                aria-label={`${m.sender_name ?? 'System'}, ${new Date(m.created_at).toLocaleTimeString()}`}
                tabIndex={-1}
                data-message-id={m.id}
              >
                <MessageItem
                  message={m}
                  mine={m.sender_id === client.userId}
                  status={chat.statusOf(m)}
                  parent={parent}
                  highlighted={highlight === m.id}
                  onJump={(id) => void jumpTo(id)}
                  onReply={onReply}
                  onRetry={chat.retry}
                  onDiscard={chat.discard}
                  onEdit={(msg, content) => void act(() => client.api.editMessage(msg.session_id, msg.id, content))}
                  onDelete={(msg) => void act(() => client.api.deleteMessage(msg.session_id, msg.id))}
                  onReport={(msg, category) =>
                    void act(async () => {
                      await client.api.reportMessage(msg.session_id, msg.id, category);
                      setNotice('Thank you: the report was sent to the moderators.');
                    })
                  }
                />
              </div>
            );
          })}
        </div>
      </div>
      {notice && (
        <p className="notice" role="status" aria-label="Moderation">
          {notice}
        </p>
      )}
      <div className="typing" role="status" aria-label="Typing">
        {typing.length ? `${typing.map((t) => t.user_name).join(', ')} ${typing.length > 1 ? 'are' : 'is'} typing…` : ''}
      </div>
      {dragging && <div className="dropzone">Drop files to send them</div>}
    </div>
  );
}
