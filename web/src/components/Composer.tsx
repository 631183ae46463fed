// The composer: text (Enter sends, Shift+Enter a new line), reply, files picked or dropped
// (with progress), and a voice note recorded in the browser (MediaRecorder) sent as audio.
import { useRef, useState, type FormEvent, type KeyboardEvent } from 'react';
import { bytes, explain } from '../format';
import type { UnifiedChat } from '@consult-chat/client/react';

export function Composer({
  chat,
  replyTo,
  onCancelReply,
}: {
  chat: UnifiedChat;
  replyTo: string | null;
  onCancelReply: () => void;
}) {
  const [text, setText] = useState('');
  const [recording, setRecording] = useState<MediaRecorder | null>(null);
  const [voiceError, setVoiceError] = useState<string | null>(null);
  const fileInput = useRef<HTMLInputElement>(null);
  const closed = chat.activeSession?.status === 'closed';
  const parent = replyTo && chat.activeSessionId ? chat.client.message(chat.activeSessionId, replyTo) : undefined;

  function submit(e?: FormEvent) {
    e?.preventDefault();
    const content = text.trim();
    if (!content) return;
    chat.sendMessage(content, replyTo);
    setText('');
    onCancelReply();
  }

  function onKey(e: KeyboardEvent<HTMLTextAreaElement>) {
    if (e.key === 'Enter' && !e.shiftKey) {
      e.preventDefault();
      submit();
    }
  }

  async function toggleRecording() {
    if (recording) {
      recording.stop();
      return;
    }
    setVoiceError(null);
    try {
      const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
      const type = MediaRecorder.isTypeSupported('audio/webm;codecs=opus') ? 'audio/webm;codecs=opus' : '';
      const rec = new MediaRecorder(stream, type ? { mimeType: type } : undefined);
      const chunks: Blob[] = [];
      rec.ondataavailable = (ev) => ev.data.size && chunks.push(ev.data);
      rec.onstop = () => {
        stream.getTracks().forEach((t) => t.stop());
        setRecording(null);
        const blob = new Blob(chunks, { type: rec.mimeType || 'audio/webm' });
        if (blob.size) void chat.uploadFile(blob, `voice-note-${new Date().toISOString().slice(11, 19).replace(/:/g, '')}.webm`, { replyTo });
      };
      rec.start();
      setRecording(rec);
    } catch (err) {
      setVoiceError(`Could not record: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  return (
    <form className="composer" onSubmit={submit} aria-label="Composer">
      {replyTo && (
        <div className="replying">
          Replying to {parent ? `${parent.sender_name}: ${(parent.content ?? '').slice(0, 80)}` : 'a message'}{' '}
          <button type="button" onClick={onCancelReply} aria-label="Cancel reply">
            ×
          </button>
        </div>
      )}
      {chat.uploads.map((u) => (
        <div key={u.id} className="upload">
          <span>{u.name}</span>{' '}
          {u.error ? (
            <>
              <span role="alert" className="error">
                {explain(u.error)}
              </span>{' '}
              <button type="button" onClick={() => chat.dismissUpload(u.id)}>
                Dismiss
              </button>
            </>
          ) : (
            <>
              <progress aria-label={`Uploading ${u.name}`} max={u.total || 1} value={u.sent} />{' '}
              <span>
                {bytes(u.sent)} / {bytes(u.total)}
              </span>
            </>
          )}
        </div>
      ))}
      {voiceError && (
        <p role="alert" className="error">
          {voiceError}
        </p>
      )}
      {closed && <p className="error">This session is closed: it takes no new messages.</p>}
      <div className="row">
        <textarea
          aria-label="Message"
          rows={2}
          value={text}
          disabled={closed}
          placeholder="Write a message"
          onChange={(e) => {
            setText(e.target.value);
            if (e.target.value) chat.onTyping();
          }}
          onKeyDown={onKey}
        />
        <label className="attach">
          <span>Attach file</span>
          <input
            ref={fileInput}
            type="file"
            aria-label="Attach file"
            multiple
            disabled={closed}
            onChange={(e) => {
              for (const f of Array.from(e.target.files ?? [])) void chat.uploadFile(f, f.name, { replyTo });
              e.target.value = '';
            }}
          />
        </label>
        <button type="button" onClick={() => void toggleRecording()} disabled={closed} aria-pressed={!!recording}>
          {recording ? 'Stop recording' : 'Record voice note'}
        </button>
        <button type="submit" disabled={closed || !text.trim()}>
          Send
        </button>
      </div>
    </form>
  );
}
