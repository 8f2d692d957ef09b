/**
 * The canonical job: what a Compose-style file converts to, what `shoal job run --output` prints, what the
 * cluster stores and schedules. Every unit is explicit in the field name; every default is filled in, so two
 * files that mean the same thing give the same canonical job.
 */

export type JobType = 'service' | 'batch';
export type DriverName = 'docker' | 'process';

export interface Job {
  name: string;
  type: JobType;
  /** Services by name, in the file's order. */
  services: ServiceSpec[];
}

export interface PortMapping {
  /** Port inside the task. */
  target: number;
  /** Port on the host (host mode: the same node port the task listens on). */
  published: number;
  protocol: 'tcp' | 'udp';
}

export interface BindMount {
  /** Absolute path on the host. */
  source: string;
  target: string;
  readOnly: boolean;
}

export interface HealthCheck {
  /** ["CMD", ...argv] or ["CMD-SHELL", "script"]. */
  test: string[];
  intervalMs: number;
  timeoutMs: number;
  retries: number;
  startPeriodMs: number;
}

export type ConstraintOp = '==' | '!=';

export interface Constraint {
  /** `node.name`, `node.id`, `node.role` or `node.labels.<key>`. */
  attribute: string;
  op: ConstraintOp;
  value: string;
}

export interface Resources {
  cpuMillicores: number;
  memoryBytes: number;
}

export interface RestartPolicy {
  condition: 'none' | 'on-failure' | 'any';
  delayMs: number;
  /** Restarts allowed within `windowMs` (or ever, when windowMs is 0); null means unlimited. */
  maxAttempts: number | null;
  windowMs: number;
}

export interface ServiceSpec {
  name: string;
  driver: DriverName;
  image: string | null;
  /** argv; for docker, overrides the image's command when not null. */
  command: string[] | null;
  entrypoint: string[] | null;
  workingDir: string | null;
  environment: Record<string, string>;
  ports: PortMapping[];
  networkMode: 'host' | 'none';
  volumes: BindMount[];
  labels: Record<string, string>;
  healthcheck: HealthCheck | null;
  stopGraceMs: number;
  stopSignal: string;
  deploy: {
    mode: 'replicated' | 'global';
    /** Replicas for replicated mode; 0 for global (one per eligible node). */
    replicas: number;
    placement: {
      constraints: Constraint[];
      /** 0 means no limit. */
      maxReplicasPerNode: number;
      /** Label attributes to spread replicas across, e.g. `node.labels.zone`. */
      spread: string[];
    };
    resources: { reservations: Resources; limits: Resources };
    restartPolicy: RestartPolicy;
  };
}
