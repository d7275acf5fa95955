/** JSON logging for every long-running process (pino), with secrets redacted by path. */
import pino from 'pino';
import type { Logger, DestinationStream } from 'pino';

export type { Logger };

/** Log levels accepted in config. */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
/** One of LOG_LEVELS. */
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Create the root logger of a process. `destination` defaults to stdout. */
export function createLogger(name: string, level: LogLevel, destination?: DestinationStream): Logger {
  return pino(
    {
      name,
      level,
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: ['token', '*.token', 'authorization', '*.authorization', 'headers.authorization'], censor: '[redacted]' },
      formatters: { level: (label) => ({ level: label }) },
    },
    destination ?? pino.destination({ fd: 1, sync: true }),
  );
}
