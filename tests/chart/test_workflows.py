"""Every GitHub Action the workflows use is pinned by a full commit SHA, with the release it is beside it."""

from __future__ import annotations

import re

import pytest
import yaml

from tests import conftest

WORKFLOWS = sorted((conftest.ROOT / ".github" / "workflows").glob("*.yml"))
PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")
USES = re.compile(r"^\s*(?:-\s+)?uses:\s*(\S+)\s*(#.*)?$")


def uses(text: str) -> list[tuple[str, str]]:
    """The `uses:` references of a workflow, with the comment after each (empty when none)."""
    return [(m.group(1), (m.group(2) or "").lstrip("# ")) for m in map(USES.match, text.splitlines()) if m]


def refusals(text: str) -> list[str]:
    """A sentence per action not pinned by commit, or pinned without the release named in a comment."""
    found = []
    for reference, comment in uses(text):
        if reference.startswith(("./", "docker://")):
            continue  # a local action or an image, not a repository's moving ref
        if not PINNED.match(reference):
            found.append(f"{reference} is not pinned by a full commit SHA")
        elif not re.match(r"v\d+(\.\d+)*$", comment):
            found.append(f"{reference} does not name its release in a comment (e.g. `# v4.2.2`)")
    return found


def test_there_are_workflows():
    assert WORKFLOWS


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda path: path.name)
def test_every_action_is_pinned_by_commit(workflow):
    text = workflow.read_text()
    steps = [
        step
        for job in yaml.safe_load(text)["jobs"].values()
        for step in job.get("steps", [])
        if "uses" in step
    ]
    assert len(uses(text)) == len(steps), "a `uses:` line the check does not read"
    assert refusals(text) == []


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("      - uses: actions/checkout@v4", "is not pinned by a full commit SHA"),
        ("        uses: helm/kind-action@main  # v1", "is not pinned by a full commit SHA"),
        ("      - uses: actions/checkout@11d5960a", "is not pinned by a full commit SHA"),
        (
            "      - uses: actions/checkout@11d5960a326750d5838078e36cf38b85af677262",
            "does not name its release",
        ),
    ],
)
def test_an_action_by_tag_branch_or_short_sha_is_refused(line, expected):
    (problem,) = refusals(line)
    assert expected in problem


def test_an_action_by_commit_with_its_release_passes():
    assert refusals("      - uses: actions/checkout@11d5960a326750d5838078e36cf38b85af677262  # v4.4.0") == []
