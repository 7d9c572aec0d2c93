"""pods/<name>/binding: what the scheduler (here the simulator) posts to place a Pod on a node.

Sets spec.nodeName and the PodScheduled condition, copies the Binding's annotations onto the Pod, and refuses
a Pod that is already bound (409), as kube-apiserver's binding REST does.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

from superpod_sandbox.apiserver import errors
from superpod_sandbox.apiserver.patches import managed
from superpod_sandbox.apiserver.registry.semantics import Options, State, Target


async def bind(api: State, target: Target, body: Any, options: Options) -> None:
    node = ((body or {}).get("target") or {}).get("name") if isinstance(body, dict) else None
    if not node:
        raise errors.invalid(
            "",
            "Binding",
            target.name,
            [errors.FieldError("FieldValueRequired", "Required value", "target.name")],
        )
    old = api.store.get(target.resource.storage_key, target.namespace, target.name)
    if old is None:
        raise errors.not_found("", "pods", target.name)
    if (old.get("spec") or {}).get("nodeName"):
        assigned = old["spec"]["nodeName"]
        raise errors.conflict(
            "", "pods/binding", target.name, f'pod {target.name} is already assigned to node "{assigned}"'
        )
    assert isinstance(body, dict)
    new = copy.deepcopy(old)
    new.setdefault("spec", {})["nodeName"] = node
    annotations = (body.get("metadata") or {}).get("annotations") or {}
    if annotations:
        new["metadata"].setdefault("annotations", {}).update(annotations)
    conditions = new.setdefault("status", {}).setdefault("conditions", [])
    conditions[:] = [c for c in conditions if c.get("type") != "PodScheduled"]
    conditions.append(
        {"type": "PodScheduled", "status": "True", "lastProbeTime": None, "lastTransitionTime": managed.now()}
    )
    await api.write_update(dataclasses.replace(target, subresource="binding"), old, new, options)
