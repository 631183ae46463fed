export { ChatClient, DELETED_USER, toInfo } from './client';
export type { ChatClientOptions, ClientEvents, DeliveryStatus, OutgoingMessage, SessionView, ThreadMessage } from './client';
export { ApiError, ChatApi } from './api';
export type { SessionFilters, UploadOptions, UploadResult } from './api';
export { decodeToken, nameOf, roleOf } from './tokens';
export * from './types';
