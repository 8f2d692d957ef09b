export { autopilotStep, voterTarget, DEFAULT_FAILURE_DOMAIN_LABEL, type AutopilotInput } from './autopilot.js';
