"""HCCL rank tables (`hccl.json`) for a partition's pods: pure builders, no Kubernetes I/O.

Formats and behaviour follow Huawei MindCluster (repository Ascend/mind-cluster): the documented shapes in
docs/en/scheduling/api/hccl.json_file_description.md (samples in tests/fixtures/reference/ranktable-v*.json),
the ascend-operator's generators in component/ascend-operator/pkg/ranktable/ (v1, v1dot2, v2dot0, common) and the device plugin's annotation in component/ascend-device-plugin/pkg/common/proto.go.

Modules, in the order data flows:
- `configuration`: parse the device plugin's pod annotation (`parse_ascend_configuration`).
- `slots`: what the operator knows per rank slot (`RankSlot`), consistency checks, rank numbering.
- `servers` (v1.0, v1.2) and `ranks` (v2.0): build the tables; `levels`: the v2.0 network levels.
- `tables`: the typed tables; `render`: their exact `hccl.json` text; `versions`: profile -> version, build.

Status. MindCluster's ascend-operator writes nothing until every pod of the job is allocated; until then the
ConfigMap holds what the user created it with, `{"status":"initializing"}`, and after a pod is lost it
rewrites the table as `initializing` (keeping the old server list). Consumers (the launch scripts in
MindCluster's samples, MindSpore, torch_npu) wait for `"status":"completed"` and read nothing else before.
Here an initializing table has the complete table's shape and lists the slots already allocated (their
servers, devices and ranks, with final rank ids); counts (`server_count`, `rank_count`, `super_pod_list`)
describe what is listed. So the table shows which ranks are still missing, and a listed rank keeps its rank id
and addresses when the table completes (only a v2.0 rank's scale-out levels 2 and 3 may change, as the port
type is chosen over the whole table).
"""
