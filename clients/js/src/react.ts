// The React entry point (@consult-chat/client/react): hooks over a ChatClient. React is an
// optional peer dependency of the package; only this entry imports it.
export { useClientVersion, useUnifiedChat } from './useUnifiedChat.js';
export type { UnifiedChat, Upload } from './useUnifiedChat.js';
