/**
 * `tetragon-file:PATH` — follows Tetragon's JSON export file (`export-filename`, one
 * GetEventsResponse per line) with the same tail as falco-file: from the start or the saved
 * position, then appends, rotation (Tetragon rotates its export itself) and truncation.
 */
import { createFileTail } from './falco-file.js';
import { SourceSpecError, type SourceFactory } from './source.js';
import { parseTetragonLine } from './tetragon-event.js';

/** `tetragon-file:PATH`. */
export const tetragonFileSource: SourceFactory = {
  scheme: 'tetragon-file',
  usage: 'tetragon-file:PATH  follow a Tetragon JSON export file like tail -F (resumes from its saved position)',
  create(argument, ctx) {
    if (argument === '' || argument.includes('\0')) throw new SourceSpecError('tetragon-file needs a path: --source tetragon-file:/var/run/cilium/tetragon/tetragon.log');
    return createFileTail(`tetragon-file:${argument}`, argument, ctx, { follow: ctx.follow, parse: parseTetragonLine });
  },
};
