"""Table columns of the workload and policy kinds, as kube's internal printers (pkg/printers/internalversion)
print them: ReplicaSets, StatefulSets, DaemonSets, Jobs, CronJobs, PriorityClasses, PodDisruptionBudgets and
NetworkPolicies. `COLUMNS` adds them to `printers.BUILTIN_COLUMNS`; cells are computed on the server, with
kube's texts (`Complete`, `1/3`, `<none>`, `<unset>`)."""

from __future__ import annotations

import datetime
from collections.abc import Callable, Mapping
from typing import Any

from superpod_sandbox.apiserver.formats import printers

Cell = Any
Columns = list[dict[str, Any]]
_column = printers._column
_field = printers._field
_NAME = printers._NAME
_AGE = printers._AGE


def _status(obj: Mapping[str, Any], field: str) -> int:
    return int((obj.get("status") or {}).get(field) or 0)


def _spec(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("spec") or {}


def _template_containers(*path: str) -> Callable[[str], Callable[[dict[str, Any]], Cell]]:
    """Containers/Images cells of a pod template found under `spec.<path>.template`."""

    def of(field: str) -> Callable[[dict[str, Any]], Cell]:
        def cell(obj: dict[str, Any]) -> Cell:
            spec: Any = _spec(obj)
            for key in path:
                spec = (spec or {}).get(key) or {}
            containers = ((spec.get("template") or {}).get("spec") or {}).get("containers") or []
            return ",".join(str(container.get(field, "")) for container in containers)

        return cell

    return of


def _label_selector(selector: Mapping[str, Any] | None) -> str:
    """metav1.FormatLabelSelector: `a=b,c in (d,e)`, `<none>` for none."""
    if not selector:
        return "<none>"
    parts = [f"{key}={value}" for key, value in sorted((selector.get("matchLabels") or {}).items())]
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression.get("key", ""), expression.get("operator", "")
        values = ",".join(sorted(str(v) for v in expression.get("values") or []))
        if operator == "Exists":
            parts.append(key)
        elif operator == "DoesNotExist":
            parts.append(f"!{key}")
        else:
            parts.append(f"{key} {operator.lower()} ({values})")
    return ",".join(parts) or "<none>"


def _selector(obj: Mapping[str, Any]) -> Cell:
    return _label_selector(_spec(obj).get("selector"))


def _has_condition(obj: Mapping[str, Any], kind: str) -> bool:
    conditions = (obj.get("status") or {}).get("conditions") or []
    return any(c.get("type") == kind and c.get("status") == "True" for c in conditions)


def _job_status(job: Mapping[str, Any]) -> Cell:
    if _has_condition(job, "Complete"):
        return "Complete"
    if _has_condition(job, "Failed"):
        return "Failed"
    if (job.get("metadata") or {}).get("deletionTimestamp"):
        return "Terminating"
    for kind in ("Suspended", "FailureTarget", "SuccessCriteriaMet"):
        if _has_condition(job, kind):
            return kind
    return "Running"


def _job_completions(job: Mapping[str, Any]) -> Cell:
    succeeded = _status(job, "succeeded")
    completions = _spec(job).get("completions")
    if completions is not None:
        return f"{succeeded}/{completions}"
    parallelism = int(_spec(job).get("parallelism") or 0)
    return f"{succeeded}/1 of {parallelism}" if parallelism > 1 else f"{succeeded}/1"


def _parse(timestamp: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(timestamp.replace("Z", "+00:00"))


def _job_duration(job: Mapping[str, Any]) -> Cell:
    status = job.get("status") or {}
    start, end = status.get("startTime"), status.get("completionTime")
    if not start:
        return ""
    finish = _parse(end) if end else datetime.datetime.now(datetime.UTC)
    return printers.human_duration((finish - _parse(start)).total_seconds())


def _bool_pointer(value: Any) -> str:
    return "<unset>" if value is None else ("True" if value else "False")


def _last_schedule(cronjob: Mapping[str, Any]) -> Cell:
    last = (cronjob.get("status") or {}).get("lastScheduleTime")
    return printers.since(last) if last else "<none>"


def _node_selector(daemonset: Mapping[str, Any]) -> Cell:
    selector = ((_spec(daemonset).get("template") or {}).get("spec") or {}).get("nodeSelector") or {}
    return ",".join(f"{k}={v}" for k, v in sorted(selector.items())) or "<none>"


def _intstr_or_na(value: Any) -> str:
    return "N/A" if value is None else str(value)


def _pod_selector(policy: Mapping[str, Any]) -> Cell:
    selector = _spec(policy).get("podSelector") or {}
    return _label_selector(selector) if selector else "<none>"


_POD_TEMPLATE = _template_containers()
_JOB_TEMPLATE = _template_containers("jobTemplate", "spec")

COLUMNS: dict[tuple[str, str], Columns] = {
    ("apps", "replicasets"): [
        _NAME,
        _column("Desired", lambda rs: int(_spec(rs).get("replicas", 1)), type="integer"),
        _column("Current", lambda rs: _status(rs, "replicas"), type="integer"),
        _column("Ready", lambda rs: _status(rs, "readyReplicas"), type="integer"),
        _AGE,
        _column("Containers", _POD_TEMPLATE("name"), 1),
        _column("Images", _POD_TEMPLATE("image"), 1),
        _column("Selector", _selector, 1),
    ],
    ("apps", "statefulsets"): [
        _NAME,
        _column("Ready", lambda sts: f"{_status(sts, 'readyReplicas')}/{int(_spec(sts).get('replicas', 1))}"),
        _AGE,
        _column("Containers", _POD_TEMPLATE("name"), 1),
        _column("Images", _POD_TEMPLATE("image"), 1),
    ],
    ("apps", "daemonsets"): [
        _NAME,
        _column("Desired", lambda ds: _status(ds, "desiredNumberScheduled"), type="integer"),
        _column("Current", lambda ds: _status(ds, "currentNumberScheduled"), type="integer"),
        _column("Ready", lambda ds: _status(ds, "numberReady"), type="integer"),
        _column("Up-to-date", lambda ds: _status(ds, "updatedNumberScheduled"), type="integer"),
        _column("Available", lambda ds: _status(ds, "numberAvailable"), type="integer"),
        _column("Node Selector", _node_selector),
        _AGE,
        _column("Containers", _POD_TEMPLATE("name"), 1),
        _column("Images", _POD_TEMPLATE("image"), 1),
        _column("Selector", _selector, 1),
    ],
    ("batch", "jobs"): [
        _NAME,
        _column("Status", _job_status),
        _column("Completions", _job_completions),
        _column("Duration", _job_duration),
        _AGE,
        _column("Containers", _POD_TEMPLATE("name"), 1),
        _column("Images", _POD_TEMPLATE("image"), 1),
        _column("Selector", _selector, 1),
    ],
    ("batch", "cronjobs"): [
        _NAME,
        _column("Schedule", _field("spec", "schedule", default="")),
        _column("Timezone", _field("spec", "timeZone")),
        _column("Suspend", lambda cj: _bool_pointer(_spec(cj).get("suspend")), type="boolean"),
        _column("Active", lambda cj: len((cj.get("status") or {}).get("active") or []), type="integer"),
        _column("Last Schedule", _last_schedule),
        _AGE,
        _column("Containers", _JOB_TEMPLATE("name"), 1),
        _column("Images", _JOB_TEMPLATE("image"), 1),
        _column(
            "Selector",
            lambda cj: _label_selector((_spec(cj).get("jobTemplate") or {}).get("spec", {}).get("selector")),
            1,
        ),
    ],
    ("scheduling.k8s.io", "priorityclasses"): [
        _NAME,
        _column("Value", lambda pc: int(pc.get("value") or 0), type="integer"),
        _column("Global-Default", lambda pc: bool(pc.get("globalDefault")), type="boolean"),
        _AGE,
        _column("PreemptionPolicy", lambda pc: pc.get("preemptionPolicy") or "<unset>"),
    ],
    ("policy", "poddisruptionbudgets"): [
        _NAME,
        _column("Min Available", lambda pdb: _intstr_or_na(_spec(pdb).get("minAvailable"))),
        _column("Max Unavailable", lambda pdb: _intstr_or_na(_spec(pdb).get("maxUnavailable"))),
        _column("Allowed Disruptions", lambda pdb: _status(pdb, "disruptionsAllowed"), type="integer"),
        _AGE,
    ],
    ("networking.k8s.io", "networkpolicies"): [_NAME, _column("Pod-Selector", _pod_selector), _AGE],
}
