/**
 * Limits of job files. They are re-exported from here so the jobspec module reads them in one place; the values
 * live in src/lib/limits.ts with every other limit.
 */
import { invariant } from '../lib/assert.js';
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
  /** Secrets one job declares (top-level `secrets:`), external ones included. */
  maxSecretsPerJob: LIMITS.jobMaxSecrets,
  /** Configs one job declares (top-level `configs:`), external ones included. */
  maxConfigsPerJob: LIMITS.jobMaxConfigs,
  /** A service's references to secrets, and separately to configs (one secret may be used at several targets). */
  maxFileRefsPerService: LIMITS.jobMaxFileRefsPerService,
  /** A stateful service's partitions (`x-shoal.state.partitions`, or the names of a named scheme). */
  maxPartitionsPerService: LIMITS.partitionsMaxPerService,
  /** Replicas of each partition (`x-shoal.state.replicas`), odd. */
  maxPartitionReplicas: LIMITS.partitionReplicasMax,
  /** UTF-8 bytes of a named scheme's name (it is the partition key that routes to the partition). */
  maxPartitionNameBytes: LIMITS.partitionKeyMaxBytes,
  /** Collections a stateful service declares (each partition holds them all, and the ones created on first write). */
  maxCollectionsPerService: LIMITS.partitionMaxCollections,
  /** UTF-8 bytes of a collection's name. */
  maxCollectionNameBytes: LIMITS.partitionCollectionNameMaxBytes,
} as const;

// Every secret and config of a job that is at its limits must fit in the cluster's store at once.
invariant(JOBSPEC_LIMITS.maxSecretsPerJob + JOBSPEC_LIMITS.maxConfigsPerJob <= LIMITS.stateMaxFileObjects,
  'one job\'s secrets and configs must fit in the cluster\'s store of them (stateMaxFileObjects)');
