/** Every scenario, in the order `npm run bench` runs them. */
import type { Scenario } from '../lib/types.js';
import { scenario as agentHotPath } from './agent-hot-path.js';
import { scenario as endToEnd } from './end-to-end.js';
import { scenario as collectorIngest } from './collector-ingest.js';
import { scenario as manyNodes } from './many-nodes.js';
import { scenario as growthHotPath } from './growth-hot-path.js';
import { scenario as growthCollector } from './growth-collector.js';
import { scenario as growthPostgres } from './growth-postgres.js';
import { scenario as ingestPostgres } from './ingest-postgres.js';
import { scenario as manyNodesPostgres } from './many-nodes-postgres.js';
import { scenario as agentMemory } from './agent-memory.js';
import { scenario as detectionQuality } from './detection-quality.js';

export const SCENARIOS: readonly Scenario[] = [agentHotPath, endToEnd, collectorIngest, manyNodes, growthHotPath, growthCollector, growthPostgres, ingestPostgres, manyNodesPostgres, agentMemory, detectionQuality];
