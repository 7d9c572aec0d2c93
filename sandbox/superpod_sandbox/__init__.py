"""The superpod sandbox: a local Kubernetes API server and a simulated Ascend fleet, for demos and tests.

`apiserver` is an in-memory kube-apiserver (generic: it knows nothing of SuperPoDs), `sim` a simulated fleet
that runs against any API server, and `commands` the `superpod` subcommands that need them (`sandbox`, `sim`,
`demo`, `bench e2e`), which the operator's CLI offers only when this package is installed. Never part of the
operator image.
"""
