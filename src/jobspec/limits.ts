/**
 * Limits of job files. They are re-exported from here so the jobspec module reads them in one place; the values
 * live in src/lib/limits.ts with every other limit.
 */
import { LIMITS } from '../lib/limits.js';

export const JOBSPEC_LIMITS = {
  maxJobFileBytes: LIMITS.jobMaxFileBytes,
  maxYamlAliases: LIMITS.jobMaxYamlAliases,
  maxServicesPerJob: LIMITS.jobMaxServices,
  maxReplicas: LIMITS.jobMaxReplicas,
  maxListEntries: LIMITS.jobMaxListEntries,
  maxSpreadPreferences: LIMITS.jobMaxSpreadPreferences,
  maxStopGraceMs: LIMITS.jobMaxStopGraceMs,
  maxRestartAttempts: LIMITS.jobMaxRestartAttempts,
  minHealthIntervalMs: LIMITS.jobMinHealthIntervalMs,
  maxHealthIntervalMs: LIMITS.jobMaxHealthIntervalMs,
  maxHealthRetries: LIMITS.jobMaxHealthRetries,
  maxNetworks: LIMITS.jobMaxNetworks,
  maxNetworksPerService: LIMITS.jobMaxNetworksPerService,
  maxAliasesPerNetwork: LIMITS.jobMaxAliasesPerNetwork,
} as const;
