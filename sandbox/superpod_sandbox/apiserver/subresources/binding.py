"""pods/<name>/binding: what the scheduler (here the simulator) posts to place a Pod on a node.

As kube-apiserver's binding REST: admission sees a CREATE of the `Binding` (kind Binding, resource pods,
subresource binding, no old object), mutating then validating webhooks; then the Pod gets spec.nodeName, the
PodScheduled condition and the Binding's annotations without a Pod UPDATE admission of its own; a Pod that is
already bound is refused (409).
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
    assert isinstance(body, dict)
    binding_target = dataclasses.replace(target, subresource="binding")
    if api.admission is not None:
        admitted = _binding(target, body)
        admitted = await api.admission("CREATE", binding_target, admitted, None, options, True) or admitted
        await api.admission("CREATE", binding_target, admitted, None, options, False)
        body = admitted
        node = (body.get("target") or {}).get("name") or node
    old = api.store.get(target.resource.storage_key, target.namespace, target.name)
    if old is None:
        raise errors.not_found("", "pods", target.name)
    if (old.get("spec") or {}).get("nodeName"):
        assigned = old["spec"]["nodeName"]
        raise errors.conflict(
            "", "pods/binding", target.name, f'pod {target.name} is already assigned to node "{assigned}"'
        )
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
    await api.write_update(binding_target, old, new, options, admit=False)


def _binding(target: Target, body: dict[str, Any]) -> dict[str, Any]:
    """The Binding as admission sees it: kind, apiVersion, and the pod's name and namespace in metadata."""
    metadata = {**(body.get("metadata") or {}), "name": target.name, "namespace": target.namespace}
    return {**body, "apiVersion": "v1", "kind": "Binding", "metadata": metadata}
