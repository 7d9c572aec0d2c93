"""The operator's writes: status patches of the custom resources, and Kubernetes Events users read.

Status goes through the `/status` subresource as a JSON merge patch, so a write never touches spec or metadata
and never races a user's edit of them. Events are core/v1 Events (what `kubectl describe` and `kubectl get events`
show); those of the cluster-scoped SuperPod go to the `default` namespace, as kube-apiserver's own do.
"""

from __future__ import annotations

import functools
import logging
import time

from superpod.api import common
from superpod.api import partition as api_partition
from superpod.api import superpod as api_superpod
from superpod.cluster import client

JSON = common.JSON
COMPONENT = "superpod-operator"
logger = logging.getLogger(__name__)


def now() -> str:
    """The current time as Kubernetes writes timestamps (RFC 3339, seconds, UTC)."""
    return _timestamp(int(time.time()))


@functools.lru_cache(maxsize=2)
def _timestamp(second: int) -> str:
    # formatted once a second: each placement writes two timestamps (its status and its Event)
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second))


def partition_path(namespace: str, name: str, subresource: str | None = None) -> str:
    return client.resource_path(common.API_VERSION, api_partition.PLURAL, namespace, name, subresource)


def superpod_path(name: str | None = None, subresource: str | None = None) -> str:
    return client.resource_path(common.API_VERSION, api_superpod.PLURAL, None, name, subresource)


class Writer:
    """Status patches and Events through one client."""

    def __init__(self, api: client.KubeClient, instance: str = "") -> None:
        self.api = api
        self.instance = instance

    async def partition_status(
        self, namespace: str, name: str, status: JSON, *, resource_version: str | None = None
    ) -> JSON | None:
        """Merge-patch a partition's status; None when the partition is gone.

        With `resource_version` the patch applies only to that version of the object (409 Conflict otherwise):
        slot bindings are written by admission webhooks on every replica, so allocation writes must not
        overwrite a binding they did not see.
        """
        body: JSON = {"status": status}
        if resource_version:
            body["metadata"] = {"resourceVersion": resource_version}
        try:
            return await self.api.patch(partition_path(namespace, name, "status"), body)
        except client.ApiError as error:
            if error.status == 404:
                return None
            raise

    async def superpod_status(self, name: str, status: JSON) -> JSON | None:
        try:
            return await self.api.patch(superpod_path(name, "status"), {"status": status})
        except client.ApiError as error:
            if error.status == 404:
                return None
            raise

    async def event(self, involved: JSON, *, reason: str, message: str, warning: bool = False) -> None:
        """Post an Event about `involved` (a full object or its reference); failures are logged, not raised."""
        metadata = involved.get("metadata", {})
        namespace = metadata.get("namespace") or "default"
        timestamp = now()
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{metadata.get('name', 'object')}.", "namespace": namespace},
            "involvedObject": {
                "apiVersion": involved.get("apiVersion"),
                "kind": involved.get("kind"),
                "name": metadata.get("name"),
                "namespace": metadata.get("namespace"),
                "uid": metadata.get("uid"),
            },
            "reason": reason,
            "message": message[:1024],
            "type": "Warning" if warning else "Normal",
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "reportingInstance": self.instance,
            "firstTimestamp": timestamp,
            "lastTimestamp": timestamp,
            "count": 1,
        }
        try:
            await self.api.create(client.resource_path("v1", "events", namespace), body)
        except (client.ApiError, OSError) as error:
            logger.warning("could not post event %s for %s: %s", reason, metadata.get("name"), error)
