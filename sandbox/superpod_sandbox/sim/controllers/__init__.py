"""Stand-ins for kube-controller-manager's workload controllers, named as it names them.

`manager.ControllerManager(api)` watches Deployments, ReplicaSets, Jobs and Pods and runs, level-triggered on
every change and on a short resync:

- `deployments`: the Deployment controller (one ReplicaSet per pod template, named by its pod-template-hash,
  revisions, status and the Available/Progressing conditions `kubectl rollout status` and helm read);
- `replicasets`: the ReplicaSet controller (Pods from the template up to `replicas`, surplus deleted, status);
- `jobs`: the Job controller (NonIndexed and Indexed completion modes, parallelism, completions, backoffLimit,
  succeeded/failed counts, completedIndexes, the SuccessCriteriaMet/Complete and FailureTarget/Failed
  conditions).

Pods they create go through the API server like any other (defaults, admission, webhooks); the simulated
kubelet (`sim.kubelet`) runs those bound to simulated nodes, and `sim.lifecycle` ends them when their template
asks to.
"""
