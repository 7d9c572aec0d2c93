"""Types shared by both kinds: the API group, conditions, label selectors and the model base classes."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

GROUP = "superpod.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
CATEGORY = "superpod"
PARTITION_LABEL = "superpod.dev/partition"
"""Pods carrying this label (value: a partition name in the pod's namespace) are bound to that partition."""
JSON = dict[str, Any]
"""An object as the API serves it (decoded JSON): what watches, reads and writes carry."""


class SpecModel(BaseModel):
    """Base of user-written objects: strict, unknown fields are an error (the CRD rejects them too)."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        use_attribute_docstrings=True,
    )


class StatusModel(BaseModel):
    """Base of operator-written state: lenient, so status written by another version still reads."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="ignore",
        use_attribute_docstrings=True,
    )


class ConditionStatus(StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(StatusModel):
    """One aspect of the object's state, in the standard Kubernetes condition shape."""

    type: str
    """Kind of condition, for example Ready, Degraded or Allocated."""
    status: ConditionStatus
    """True, False or Unknown."""
    reason: str = Field(default="", pattern=r"^([A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?)?$", max_length=1024)
    """Machine-readable CamelCase reason for the condition's last transition."""
    message: str = Field(default="", max_length=32768)
    """Human-readable explanation of the transition."""
    last_transition_time: str | None = None
    """When the status last changed (RFC 3339)."""
    observed_generation: int | None = Field(default=None, ge=0)
    """The metadata.generation the condition was computed from."""


class LabelSelectorRequirement(SpecModel):
    """A label requirement: a key, an operator and values."""

    key: str = Field(min_length=1)
    """The label key the requirement applies to."""
    operator: LabelSelectorOperator
    """How the key relates to the values: In, NotIn, Exists or DoesNotExist."""
    values: list[Annotated[str, Field(description="A label value.")]] | None = None
    """The values for In and NotIn; must be empty for Exists and DoesNotExist."""


class LabelSelectorOperator(StrEnum):
    IN = "In"
    NOT_IN = "NotIn"
    EXISTS = "Exists"
    DOES_NOT_EXIST = "DoesNotExist"


class LabelSelector(SpecModel):
    """A Kubernetes label selector; the requirements are ANDed."""

    match_labels: dict[str, Annotated[str, Field(description="The label's required value.")]] | None = None
    """Labels an object must carry, with these exact values."""
    match_expressions: list[LabelSelectorRequirement] | None = None
    """Set-based requirements an object's labels must meet."""


LabelSelectorRequirement.model_rebuild()
