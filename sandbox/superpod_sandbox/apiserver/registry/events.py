"""core/v1 Events and events.k8s.io/v1 Events are one stored object seen through two APIs, as in kube.

Objects are stored in the core shape; the events.k8s.io view renames fields on the way in and out
(`involvedObject` <-> `regarding`, `message` <-> `note`, `source` <-> `deprecatedSource`, ...), so an Event
posted through either API is listed, watched and described through both.
"""

from __future__ import annotations

from typing import Any

Object = dict[str, Any]
# (core field, events.k8s.io field)
RENAMED = (
    ("involvedObject", "regarding"),
    ("message", "note"),
    ("reportingComponent", "reportingController"),
    ("source", "deprecatedSource"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
)
SHARED = ("metadata", "eventTime", "series", "reportingInstance", "action", "reason", "type", "related")


def to_core(event: Object) -> Object:
    """The stored (core/v1) shape of an events.k8s.io/v1 Event."""
    core: Object = {"kind": "Event", "apiVersion": "v1"}
    for field in SHARED:
        if field in event:
            core[field] = event[field]
    for core_field, new_field in RENAMED:
        if new_field in event:
            core[core_field] = event[new_field]
    return core


def from_core(core: Object) -> Object:
    """The events.k8s.io/v1 view of a stored Event."""
    event: Object = {"kind": "Event", "apiVersion": "events.k8s.io/v1"}
    for field in SHARED:
        if field in core:
            event[field] = core[field]
    for core_field, new_field in RENAMED:
        if core_field in core:
            event[new_field] = core[core_field]
    return event
