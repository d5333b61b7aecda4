/**
 * The one place the consumer reports what happens: every event becomes a
 * log line (winston, grep-able fields) and is handed to each observer, so
 * that metrics can count the same events without touching the consumer.
 */
import type { Logger } from '../log.js';

export type EventLevel = 'error' | 'warn' | 'info' | 'debug';

export interface ConsumerEvent {
  level: EventLevel;
  /** The log message, stable: tests and operators grep for it. */
  message: string;
  /** Always carries `action`; the queue is added to every event. */
  fields: Record<string, unknown>;
}

export type Observer = (e: ConsumerEvent) => void;

export class ConsumerEvents {
  private readonly observers: Observer[] = [];

  constructor(
    private readonly log: Logger,
    private readonly base: Record<string, unknown>,
  ) {}

  observe(fn: Observer): void {
    this.observers.push(fn);
  }

  /** Whether events of this level reach the log (observers get every event; none needs per-address ones). */
  enabled(level: EventLevel): boolean {
    return this.observers.length > 0 || this.log.isLevelEnabled(level);
  }

  emit(level: EventLevel, message: string, fields: Record<string, unknown> & { action: string }): void {
    const all = { ...this.base, ...fields };
    this.log.log(level, message, all);
    for (const o of this.observers) o({ level, message, fields: all });
  }
}
