export { jobNameFromFile, parseEnvText, parseJobFile, parseJobFiles, type ParseOptions, type ParseResult } from './parse.js';
export { jobSchema, validateJob, parseCanonicalJob } from './canonical.js';
export { JobSpecError, formatIssue, type JobIssue } from './errors.js';
export type { Job, ServiceSpec, PortMapping, ExposedPort, NetworkSpec, ServiceNetwork, BindMount, HealthCheck, Constraint, Resources, RestartPolicy, JobType, DriverName, FileObjectSpec, FileObjectSource, FileRef, StateSpec, StateScheme, StateCollection, CollectionKind } from './types.js';
export { parseDurationMs, parseBytes, parseCpuMillicores, splitCommand } from './units.js';
export { interpolate, type Env } from './interpolate.js';
