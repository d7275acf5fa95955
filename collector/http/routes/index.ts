/**
 * Every route of the collector's HTTP server, in one list: dispatch (server.ts), authorization
 * (auth.ts reads the matched route's role), the console's permissions (`GET /api/v1/whoami` lists
 * the routes the caller may call) and the refusals (404, 405 with Allow) all read it. The README's
 * HTTP API table names each one with its least role (test/collector/routes.test.ts checks both ways).
 */
import { createRouteTable, type Route, type RouteTable } from '../route.js';
import { alertRoutes } from './alerts.js';
import { baselineRoutes } from './baselines.js';
import { exceptionRoutes } from './exceptions.js';
import { imageRoutes } from './images.js';
import { nodeRoutes } from './nodes.js';
import { sbomRoutes } from './sboms.js';
import { systemRoutes } from './system.js';

/** The list. */
export const ROUTES: readonly Route[] = [...systemRoutes, ...alertRoutes, ...exceptionRoutes, ...baselineRoutes, ...nodeRoutes, ...imageRoutes, ...sbomRoutes];

/** The list, compiled for matching. */
export const ROUTE_TABLE: RouteTable = createRouteTable(ROUTES);

/** The least role `method` on `path` needs (see RouteTable.roleOf). */
export function requiredRole(method: string, path: string): ReturnType<RouteTable['roleOf']> {
  return ROUTE_TABLE.roleOf(method, path);
}

/** The body bound `method` on `path` declares, or null (see RouteTable.bodyLimitOf). */
export function requestBodyLimit(method: string, path: string): number | null {
  return ROUTE_TABLE.bodyLimitOf(method, path);
}
