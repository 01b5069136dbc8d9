/**
 * Preloaded (`--import`, through NODE_OPTIONS) by scripts/run-tests.mjs into every Node process of a test run: a
 * test file's process (the test runner starts it with NODE_TEST_CONTEXT set and the file as its script) records the
 * file in XENSTACK_TEST_FILE, and every process it spawns inherits it. The state store's test hook
 * (packages/xenstack/src/state/test-databases.ts) writes it down when a store is opened, which is how the runner
 * knows, mechanically, which test files touch the state store (directly, or through the CLI, server or lab
 * processes they start) and must run on PostgreSQL too.
 */
if (process.env.NODE_TEST_CONTEXT && !process.env.XENSTACK_TEST_FILE && process.argv[1]) {
  process.env.XENSTACK_TEST_FILE = process.argv[1]
}
export {}
