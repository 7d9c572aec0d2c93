"""Every condition type and reason the operator writes has its row in docs/operator.md ("Conditions and
reasons"), which says what it means and what to do: a new member of `api.reasons` or `PendingReason` fails
here until it is documented."""

from __future__ import annotations

import re
from enum import StrEnum

import pytest
from superpod.api import partition, reasons

from tests import conftest

DOC = conftest.ROOT / "docs" / "operator.md"
ENUMS: tuple[type[StrEnum], ...] = (
    reasons.ConditionType,
    reasons.PartitionReason,
    partition.PendingReason,
    reasons.ConflictReason,
    reasons.RankTableReason,
    reasons.SuperPodReason,
    reasons.NodeProblemReason,
    reasons.EventReason,
)


def named(text: str) -> set[str]:
    """The names written as code (`Name`) in `text`."""
    return set(re.findall(r"`([A-Za-z<>]+)`", text))


def section(text: str) -> str:
    start = text.index("## Conditions and reasons")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


@pytest.mark.parametrize("enum", ENUMS, ids=lambda enum: enum.__name__)
def test_every_member_is_documented(enum: type[StrEnum]) -> None:
    documented = named(section(DOC.read_text()))
    missing = [member.value for member in enum if member.value not in documented]
    assert not missing, (
        f"{enum.__name__} members missing from docs/operator.md, Conditions and reasons: {missing}"
    )


def test_a_name_the_section_lacks_is_found() -> None:
    assert named("| `Ready` | True | `Discovered` | N of M nodes |") == {"Ready", "Discovered"}
    assert "QuotasFit" not in named(section("## Conditions and reasons\n| `Ready` |\n## Next\n`QuotasFit`"))
