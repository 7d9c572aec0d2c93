"""End-to-end user journeys, chaos and fuzz tests: on the cluster in E2E_KUBECONFIG, or on the sandbox."""
