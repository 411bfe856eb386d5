"""Developer tooling: offline stack rendering, the policy gate runner, doc generators."""
