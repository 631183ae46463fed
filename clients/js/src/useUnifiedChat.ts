// The original frontend's hook: sessions, activeSession, messages, sendMessage, joinSession,
// isConnected, typingUsers, plus what the console's components need. A thin layer over
// ChatClient (which owns the protocol); React re-renders on the client's `change`.
import { useCallback, useEffect, useMemo, useRef, useState, useSyncExternalStore } from 'react';
import {
  ChatClient,
  toInfo,
  type ChatMessage,
  type ChatSession,
  type DeliveryStatus,
  type ErrorInfo,
  type SessionFilters,
  type ThreadMessage,
  type Uuid,
} from './index.js';

export interface Upload {
  id: string;
  name: string;
  sent: number;
  total: number;
  error?: ErrorInfo;
}

const WATCHED = 50; // sessions of the list followed live (joined)

export function useClientVersion(client: ChatClient): number {
  return useSyncExternalStore(
    useCallback((cb) => client.on('change', cb), [client]),
    () => client.version,
  );
}

export function useUnifiedChat(client: ChatClient) {
  useClientVersion(client);
  const [sessions, setSessions] = useState<ChatSession[]>([]);
  const [filters, setFilters] = useState<SessionFilters>({});
  const [activeId, setActiveId] = useState<Uuid | null>(null);
  const [errors, setErrors] = useState<ErrorInfo[]>([]);
  const [uploads, setUploads] = useState<Upload[]>([]);
  const activeRef = useRef<Uuid | null>(null);
  activeRef.current = activeId;

  const report = useCallback((e: unknown) => {
    const info = toInfo(e);
    setErrors((old) => [...old.slice(-2), info]);
  }, []);

  // The list, from the server; refreshed when the filters change.
  const refresh = useCallback(async () => {
    try {
      const { sessions: list } = await client.api.listSessions({ ...filters, limit: 100 });
      setSessions(list);
      for (const s of list.slice(0, WATCHED)) void client.open(s.id);
    } catch (e) {
      report(e);
    }
  }, [client, filters, report]);

  useEffect(() => {
    void refresh();
  }, [refresh]);

  useEffect(() => {
    client.connect();
    const offError = client.on('error', (e) => {
      if (e.code !== 'rate_limited') report(e);
    });
    const offUpdated = client.on('session_updated', (e) => {
      setSessions((list) => list.map((s) => (s.id === e.session_id ? { ...s, status: e.status as ChatSession['status'] } : s)));
    });
    return () => {
      offError();
      offUpdated();
    };
  }, [client, report]);

  // Live list: a message bumps its session to the top and counts as unread unless it is
  // the open, visible thread (which marks it read).
  useEffect(
    () =>
      client.on('message', (m: ChatMessage) => {
        const mine = m.sender_id === client.userId;
        const seen = activeRef.current === m.session_id && document.visibilityState === 'visible';
        setSessions((list) => {
          const i = list.findIndex((s) => s.id === m.session_id);
          if (i < 0) return list;
          const s = list[i];
          const next: ChatSession = {
            ...s,
            last_message_at: m.created_at,
            last_message: { id: m.id, sender_id: m.sender_id, type: m.type, content: m.content, created_at: m.created_at },
            unread_count: mine || seen ? s.unread_count : s.unread_count + 1,
          };
          return [next, ...list.slice(0, i), ...list.slice(i + 1)];
        });
        if (seen && !mine) void markRead(m.session_id);
      }),
    // eslint-disable-next-line react-hooks/exhaustive-deps
    [client],
  );

  const markRead = useCallback(
    async (id: Uuid) => {
      try {
        await client.markRead(id);
        setSessions((list) => list.map((s) => (s.id === id ? { ...s, unread_count: 0 } : s)));
      } catch (e) {
        report(e);
      }
    },
    [client, report],
  );

  const joinSession = useCallback(
    async (id: Uuid) => {
      setActiveId(id);
      await client.open(id);
      if (document.visibilityState === 'visible') await markRead(id);
    },
    [client, markRead],
  );

  useEffect(() => {
    const onVisible = () => {
      if (document.visibilityState === 'visible' && activeRef.current) void markRead(activeRef.current);
    };
    document.addEventListener('visibilitychange', onVisible);
    return () => document.removeEventListener('visibilitychange', onVisible);
  }, [markRead]);

  const view = activeId ? client.view(activeId) : undefined;

  const sendMessage = useCallback(
    (content: string, replyTo?: Uuid | null) => {
      if (!activeId) return;
      const { done } = client.send(activeId, { content, reply_to_message_id: replyTo ?? null });
      done.catch(() => undefined);
    },
    [client, activeId],
  );

  const uploadFile = useCallback(
    async (file: Blob, name: string, opts: { caption?: string; replyTo?: Uuid | null } = {}) => {
      if (!activeId) return;
      const id = `${Date.now()}-${Math.random()}`;
      setUploads((u) => [...u, { id, name, sent: 0, total: file.size }]);
      try {
        await client.api.upload(activeId, file, name, {
          ...opts,
          onProgress: (sent, total) => setUploads((u) => u.map((x) => (x.id === id ? { ...x, sent, total } : x))),
        });
        setUploads((u) => u.filter((x) => x.id !== id));
      } catch (e) {
        const error = toInfo(e);
        setUploads((u) => u.map((x) => (x.id === id ? { ...x, error } : x)));
      }
    },
    [client, activeId],
  );

  const activeSession = useMemo(() => sessions.find((s) => s.id === activeId) ?? null, [sessions, activeId]);

  return {
    client,
    sessions,
    filters,
    setFilters,
    refresh,
    activeSession,
    activeSessionId: activeId,
    joinSession,
    messages: (view?.messages ?? []) as ThreadMessage[],
    hasOlder: view?.hasOlder ?? false,
    loadOlder: useCallback((limit?: number) => (activeId ? client.loadOlder(activeId, limit) : Promise.resolve(0)), [client, activeId]),
    sendMessage,
    uploadFile,
    uploads,
    dismissUpload: useCallback((id: string) => setUploads((u) => u.filter((x) => x.id !== id)), []),
    retry: useCallback((cmid: string) => client.retry(cmid), [client]),
    discard: useCallback((cmid: string) => client.discard(cmid), [client]),
    statusOf: useCallback((m: ThreadMessage): DeliveryStatus | undefined => client.statusOf(m), [client]),
    isConnected: client.connected,
    typingUsers: view?.typing ?? [],
    onlineUsers: view?.online ?? [],
    onlineIn: useCallback((id: Uuid) => client.view(id)?.online ?? [], [client]),
    onTyping: useCallback(() => activeId && client.typing(activeId), [client, activeId]),
    errors,
    dismissError: useCallback((i: number) => setErrors((e) => e.filter((_, j) => j !== i)), []),
    reportError: report,
  };
}

export type UnifiedChat = ReturnType<typeof useUnifiedChat>;
