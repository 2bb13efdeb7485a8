// The sidecar-process helper lives in bench/ (the bench runs it too); tests import it from here.
export { SidecarProcess, type LogLine } from '../../bench/sidecar-process.js';
