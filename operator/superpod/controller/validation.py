"""The validating webhook `/validate-pods`: pods that may not be created or changed, bindings to the wrong node.

kube-apiserver sends only what the configuration's matchConditions select (`cluster.webhookconfig`): partition
pods, pods reaching for devices, and bindings not made by kube-scheduler. Each review is decided here from
memory (the fleet's and the bindings loop's mirrors, the SuperPods' members), with one API read at most:

- pod CREATE, a partition pod (of the operator's namespace): it must carry the slot the mutating webhook
  recorded for it (`boundpods.create_refusal`; the partition is read again when memory has no slot for it),
  or the free slot of its node and devices (a pod created again under its name, whose old slot was released
  after its admission: the bindings loop records it there again);
  a dry run claimed nothing and is not checked;
- pod CREATE, any other pod: `isolation.refusal` (a pod without a partition reaching for an isolated
  SuperPod's devices);
- pod UPDATE: of a bound pod, `boundpods.update_refusal`; adding the partition label is refused; of any other
  pod, `isolation.update_refusal` (only what the update adds);
- pods/binding CREATE: a bound pod only to the node it is pinned to (`boundpods.binding_refusal`); a pod
  without a partition not to a member node of an isolated SuperPod when it wants that SuperPod's devices. The
  pod comes from the bindings loop's mirror of partition pods, else, only for a binding to an isolated member
  node, from a read: a binding elsewhere of a pod the operator has not seen is allowed unread, since no
  partition holds a device there.

Answers are denials with a message that says what to do (code 403), or allowed; an unexpected error fails
closed (code 500, its message). Messages name only what the requester named or can see (its pod, its
partition, nodes): never a partition of another namespace.
"""

from __future__ import annotations

import logging
from typing import Any

from superpod.api import common, views
from superpod.cluster import client, podplacement, writer
from superpod.controller import binder as binder_module
from superpod.controller import bindings as bindings_module
from superpod.controller import boundpods, isolation, membership, podrequest
from superpod.controller import fleet as fleet_module

JSON = dict[str, Any]
DENIAL_CODE = 403
logger = logging.getLogger(__name__)


class Validator:
    """Answers `/validate-pods` reviews."""

    def __init__(
        self,
        fleet: fleet_module.Fleet,
        binder: binder_module.Binder,
        bindings: bindings_module.Bindings,
        view: membership.Membership,
        *,
        namespace: str | None = None,
    ) -> None:
        self.fleet = fleet
        self.binder = binder
        self.bindings = bindings
        self.view = view
        self.namespace = namespace  # the operator serves this namespace's partitions only (None: all)

    async def review(self, review: JSON) -> JSON:
        request = review["request"]
        response: JSON = {"uid": request.get("uid", ""), "allowed": True}
        try:
            message = await self.decide(request)
        except Exception as error:  # fails closed, with the error's message
            logger.exception("validation of a %s failed", request.get("kind", {}).get("kind", "request"))
            response.update(allowed=False, status={"message": str(error) or repr(error), "code": 500})
        else:
            if message is not None:
                response.update(allowed=False, status={"message": message, "code": DENIAL_CODE})
        return {
            "apiVersion": review.get("apiVersion", "admission.k8s.io/v1"),
            "kind": "AdmissionReview",
            "response": response,
        }

    async def decide(self, request: JSON) -> str | None:
        """The denial's message, or None to allow."""
        resource = (request.get("resource") or {}).get("resource")
        subresource = request.get("subResource") or ""
        if (resource, subresource) in (("pods", "binding"), ("bindings", "")):
            return await self._binding(request)
        if resource != "pods" or subresource:
            return None
        pod = podrequest.in_namespace(request.get("object") or {}, request)
        old = request.get("oldObject")
        if request.get("operation") == "CREATE":
            if self._partition_pod(pod):
                return None if request.get("dryRun") else await self._created(pod)
            return isolation.refusal(pod, self.view.isolated(), self.view.nodes)
        if request.get("operation") != "UPDATE" or not old:
            return None
        old = podrequest.in_namespace(old, request)
        if self._partition_pod(old):
            if not boundpods.is_bound(old):
                return None  # finished: its slot is free already
            return boundpods.update_refusal(old, pod, self.view.device_keys())
        if self._partition_pod(pod):
            return boundpods.join_refusal(pod)
        return isolation.update_refusal(old, pod, self.view.isolated(), self.view.nodes)

    def _partition_pod(self, pod: JSON) -> bool:
        metadata = pod.get("metadata") or {}
        served = self.namespace is None or metadata.get("namespace") == self.namespace
        return served and common.PARTITION_LABEL in (metadata.get("labels") or {})

    async def _created(self, pod: JSON) -> str | None:
        metadata = pod["metadata"]
        namespace, name = metadata["namespace"], metadata["labels"][common.PARTITION_LABEL]
        key = f"{namespace}/{name}"
        known = views.newest(self.binder.known(namespace, name), self.fleet.partitions.get(key))
        slot = _slot_of(known, metadata.get("name"))
        if slot is None:  # memory may lag a claim another replica wrote
            known = await self.binder.api.get_or_none(writer.partition_path(namespace, name))
            slot = _slot_of(known, metadata.get("name"))
        state = self.fleet.superpods.get(views.Partition(known).superpod if known is not None else "")
        resource = state.resource if state is not None else ""
        if slot is None:
            # a pod created again under its name was granted its old slot, whose release (of the pod before it)
            # then overtook it: the slot is free, and the bindings loop records the pod in it again
            slot = _free_slot_for(known, pod, resource)
        return boundpods.create_refusal(pod, slot, resource)

    async def _binding(self, request: JSON) -> str | None:
        binding = request.get("object") or {}
        namespace = request.get("namespace") or (binding.get("metadata") or {}).get("namespace") or ""
        name = request.get("name") or (binding.get("metadata") or {}).get("name") or ""
        node = str((binding.get("target") or {}).get("name") or "")
        member = self.view.isolated_member(node)
        pod = self.bindings.pods.seen(namespace, name)
        if pod is None and member is not None:
            pod = await self.fleet.api.get_or_none(client.resource_path("v1", "pods", namespace, name))
        if pod is None:
            return None  # not seen as a partition pod, and not bound to an isolated member node
        if self._partition_pod(pod):
            return boundpods.binding_refusal(pod, node) if boundpods.is_bound(pod) else None
        if member is None or isolation.wanted(pod, member.resource) is None:
            return None
        return (
            f"pod {name} {isolation.wanted(pod, member.resource)} but has no partition, and node {node} is a "
            f"member of SuperPod {member.name}, whose devices are for the pods of its partitions only: label "
            f"the pod {common.PARTITION_LABEL}=<name> with a SuperPodPartition of namespace {namespace}, or "
            f"bind it to another node"
        )


def _slot_of(partition: JSON | None, pod: str | None) -> JSON | None:
    allocation = ((partition or {}).get("status") or {}).get("allocation") or []
    return next((slot for slot in allocation if pod and slot.get("pod") == pod), None)


def _free_slot_for(partition: JSON | None, pod: JSON, resource: str) -> JSON | None:
    """The free slot on the node and devices the pod was bound to, if there is one."""
    devices = ((pod.get("metadata") or {}).get("annotations") or {}).get(resource)
    node = podplacement.pinned_node(pod)
    allocation = ((partition or {}).get("status") or {}).get("allocation") or []
    return next(
        (
            slot
            for slot in allocation
            if not slot.get("pod") and slot["node"] == node and ",".join(slot["devices"]) == devices
        ),
        None,
    )
