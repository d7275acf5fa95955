/** The version of this build, read once from package.json. */
import { readFileSync } from 'node:fs';

/** package.json's version. */
export const VERSION: string = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
