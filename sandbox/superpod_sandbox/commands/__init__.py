"""The `superpod` subcommands that need the sandbox or the simulator, one module each.

`superpod.cli` imports this package to learn them: `COMMANDS` maps a command name to (module, one-line help),
as the operator's own table does. `bench_e2e` is offered as `superpod bench e2e` by the operator's `bench`.
"""

COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("demo", "the whole product on a sandbox cluster with a simulated SuperPoD (--once: exit after)"),
    "sandbox": ("sandbox", "serve a local in-memory Kubernetes API server and write a kubeconfig for it"),
    "sim": ("sim", "a simulated Ascend fleet (up|down|fault|heal): nodes, device plugin, NPU-Exporter"),
}
