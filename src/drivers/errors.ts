/**
 * Driver errors. Every one says whether it is `recoverable`: whether starting the same task again (after a
 * delay, on this or another node) may succeed. The restart policy reads that flag and nothing else: an image
 * that does not exist will not appear by retrying, an engine that is restarting may well come back.
 */
import { ShoalError } from '../lib/errors.js';

export class DriverError extends ShoalError {
  /** True when retrying the same operation later may succeed. */
  readonly recoverable: boolean;

  constructor(code: string, message: string, recoverable: boolean, details: Record<string, unknown> = {}, options?: { cause?: unknown }) {
    super(code, message, { ...details, recoverable }, options);
    this.recoverable = recoverable;
  }
}

/** The driver cannot run tasks on this host (no engine answering, no permission). */
export class DriverUnavailableError extends DriverError {
  constructor(driver: string, reason: string, options?: { cause?: unknown }) {
    super('ERR_DRIVER_UNAVAILABLE', `${driver} driver is unavailable: ${reason}`, true, { driver, reason }, options);
  }
}

/** The task spec cannot be run by this driver as written (bad field, missing command, unsupported option). */
export class InvalidTaskError extends DriverError {
  constructor(taskId: string, field: string, problem: string) {
    super('ERR_TASK_INVALID', `task ${taskId}: ${field}: ${problem}`, false, { taskId, field });
  }
}

/** The image is neither present locally nor obtainable from its registry. */
export class ImageNotFoundError extends DriverError {
  constructor(image: string, reason: string, options?: { cause?: unknown }) {
    super('ERR_IMAGE_NOT_FOUND', `image "${image}" not found: ${reason}`, false, { image, reason }, options);
  }
}

/** The image could not be pulled for a reason that may pass (registry unreachable, time-out). */
export class ImagePullError extends DriverError {
  constructor(image: string, reason: string, options?: { cause?: unknown }) {
    super('ERR_IMAGE_PULL', `image "${image}" could not be pulled: ${reason}`, true, { image, reason }, options);
  }
}

/** The executable does not exist (or is not executable) on the host or inside the image. */
export class CommandNotFoundError extends DriverError {
  constructor(command: string, where: string, options?: { cause?: unknown }) {
    super('ERR_COMMAND_NOT_FOUND', `command "${command}" not found ${where}`, false, { command, where }, options);
  }
}

/** Starting failed for a reason that may pass (engine error, resource busy, pull time-out). */
export class TaskStartError extends DriverError {
  constructor(taskId: string, reason: string, options?: { cause?: unknown }) {
    super('ERR_TASK_START', `task ${taskId} failed to start: ${reason}`, true, { taskId, reason }, options);
  }
}

/** A task the handle names is gone (container removed, process dead or its pid reused): restart it. */
export class TaskLostError extends DriverError {
  constructor(taskId: string, reason: string) {
    super('ERR_TASK_LOST', `task ${taskId} is lost: ${reason}`, true, { taskId, reason });
  }
}

/** A call on a running task (signal, stats, logs) failed in the engine or the operating system. */
export class DriverOperationError extends DriverError {
  constructor(taskId: string, operation: string, reason: string, options?: { cause?: unknown }) {
    super('ERR_DRIVER_OPERATION', `task ${taskId}: ${operation} failed: ${reason}`, true, { taskId, operation, reason }, options);
  }
}
