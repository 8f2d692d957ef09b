import { ShoalError } from '../lib/errors.js';

/** One thing wrong with a job file, located as precisely as the source allows. */
export interface JobIssue {
  file: string;
  /** 1-based; 0 when the position is unknown (e.g. a whole-file problem). */
  line: number;
  column: number;
  /** Dotted path of the field, e.g. `services.web.deploy.replicas`; empty for the whole file. */
  path: string;
  message: string;
}

/** Where an issue is, as messages name it: `file:line:column: path` (without line and column when unknown). */
export function formatWhere(at: Omit<JobIssue, 'message'>): string {
  const where = at.line > 0 ? `${at.file}:${at.line}:${at.column}` : at.file;
  return at.path ? `${where}: ${at.path}` : where;
}

export function formatIssue(issue: JobIssue): string {
  return `${formatWhere(issue)}: ${issue.message}`;
}

/** A job file that cannot be used. It lists every problem found, each with file, line and field path. */
export class JobSpecError extends ShoalError {
  constructor(readonly issues: readonly JobIssue[]) {
    super(
      'ERR_INVALID_JOB',
      issues.length === 1 ? formatIssue(issues[0]!) : `${issues.length} problems in the job file:\n${issues.map((i) => `  ${formatIssue(i)}`).join('\n')}`,
      { issues: issues.map(formatIssue) },
    );
  }
}
