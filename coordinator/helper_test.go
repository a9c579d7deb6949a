package coordinator

// helperEnv, when set, makes the test binary act as a worker-like process.
const helperEnv = "DSAE_COORDINATOR_TEST_HELPER"

func runHelper() int { return 0 }
