// Types of the fathom-bridge Node binding (index.js).
import { EventEmitter } from 'node:events';

export interface BridgeEvent {
  id: number; type: string; tenant_id: string; user_id: string; integration_id: number;
  detail: string; data: Record<string, unknown>; created_at?: number;
}
export interface EventPage { events: BridgeEvent[]; next: number }
export interface CrmCall {
  operation: string; idempotencyKey: string; integrationId: number; tenantId: string; userId: string;
  dryRun: boolean; callId: number;
}
export type CrmHandler = (args: Record<string, unknown>, call: CrmCall) => unknown | Promise<unknown>;

export class FathomBridgeError extends Error {
  code: string;    // 'reconnect_required', 'not_found', ...
  number: number;  // the C result code
  detail: string;  // the library's message
}

export class Bridge extends EventEmitter {
  static open(config: object | string, options?: { library?: string }): Bridge;
  readonly closed: boolean;
  crmOperation(name: string, handler: CrmHandler): this;
  on(event: 'event', listener: (e: BridgeEvent) => void): this;
  on(event: 'error', listener: (e: Error) => void): this;
  events(options?: { after?: number; follow?: boolean; waitMs?: number; limit?: number }): AsyncGenerator<BridgeEvent>;
  readEvents(after?: number, options?: { limit?: number; waitMs?: number }): Promise<EventPage>;
  connectStart(tenantId: string, userId: string, options?: { teamId?: string | null; popup?: boolean }): Promise<string>;
  connectCallback(queryString: string, signedIn?: { tenantId: string; userId: string }): Promise<Record<string, any>>;
  connectApiKey(tenantId: string, userId: string, apiKey: string): Promise<number>;
  disconnect(tenantId: string, userId: string, integrationId: number): Promise<void>;
  accessToken(tenantId: string, userId: string, integrationId: number): Promise<string>;
  tokenHealth(tenantId?: string | null, userId?: string | null): Promise<Record<string, any>[]>;
  deactivateExpired(): Promise<Record<string, any>[]>;
  sync(tenantId: string, userId: string, integrationId: number,
       options?: { mode?: 'incremental' | 'backfill' | 'manual'; since?: string; until?: string; recordingId?: number }): Promise<Record<string, any>>;
  syncStart(tenantId: string, userId: string, integrationId: number,
            options?: { mode?: 'incremental' | 'backfill' | 'manual'; since?: string; until?: string; recordingId?: number }): Promise<Record<string, any>>;
  syncJob(tenantId: string, userId: string, jobId: number): Promise<Record<string, any>>;
  syncCancel(tenantId: string, userId: string, jobId: number): Promise<void>;
  tick(): Promise<void>;
  syncJobs(filter?: object | null): Promise<Record<string, any>[]>;
  webhookReceive(path: string, headers: Record<string, string | string[]> | [string, string][], body: Buffer | string): Promise<{ status: number; body: string }>;
  webhookEvents(filter?: object | null): Promise<Record<string, any>[]>;
  webhookReplay(eventId: number | 'dead'): Promise<number>;
  reloadScripts(): Promise<void>;
  close(): Promise<void>;
}

export function version(): string;
export function load(libraryPath?: string): unknown;
export const CODES: Record<number, string>;
