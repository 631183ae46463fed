export { ChatClient, DELETED_USER, toInfo } from './client.js';
export type { ChatClientOptions, ClientEvents, DeliveryStatus, OutgoingMessage, SessionView, ThreadMessage } from './client.js';
export { ApiError, ChatApi } from './api.js';
export type { SessionFilters, UploadOptions, UploadResult } from './api.js';
export { decodeToken, nameOf, roleOf } from './tokens.js';
export * from './types.js';
