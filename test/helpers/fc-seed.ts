import fc from 'fast-check';

// Imported for its effect by every property test: one fixed seed, so a run in CI is the run you
// repeat at your desk. FC_SEED=<n> tries another sequence of inputs; a failure prints its seed.
const seed = Number(process.env['FC_SEED'] ?? 20261206);
fc.configureGlobal({ seed });
