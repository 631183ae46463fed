// The total order of messages: (created_at, seq). created_at keeps microseconds, which a
// JavaScript Date cannot hold, so positions are compared as [microseconds, seq].
import type { ChatMessage, Cursor } from './types.js';

export type Position = readonly [number, number];

const FRACTION = /\.(\d+)/;

export function micros(iso: string): number {
  const m = FRACTION.exec(iso);
  const whole = Date.parse(iso.replace(FRACTION, ''));
  const frac = m ? Number((m[1] + '000000').slice(0, 6)) : 0;
  return Math.floor(whole / 1000) * 1_000_000 + frac;
}

const cache = new WeakMap<object, Position>();

export function positionOf(m: Pick<ChatMessage, 'created_at' | 'seq'> | Cursor): Position {
  let p = cache.get(m);
  if (!p) cache.set(m, (p = [micros(m.created_at), m.seq]));
  return p;
}

export function compare(a: Position, b: Position): number {
  return a[0] - b[0] || a[1] - b[1];
}

export function later(a: Position | undefined, b: Position | undefined): Position | undefined {
  if (!a) return b;
  if (!b) return a;
  return compare(a, b) >= 0 ? a : b;
}
