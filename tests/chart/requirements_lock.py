"""The runtime dependency lock of the container image, computed from the installed environment.

`operator/requirements.lock` pins every package `superpod-operator` needs at run time (its declared
dependencies and everything they pull in, never the `dev` extra) at the version installed in the venv, so the
image installs exactly what the tests ran against. Regenerate it with

    .venv/bin/python -m tests.chart.requirements_lock > operator/requirements.lock
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import sys

from packaging import requirements, utils

DISTRIBUTION = "superpod-operator"
HEADER = (
    "# Runtime dependencies of superpod-operator, pinned at the versions the tests ran against; the image\n"
    "# (operator/Dockerfile) installs exactly these. Development tools (the `dev` extra) are not included.\n"
    "# Regenerate after changing dependencies in pyproject.toml or upgrading the venv:\n"
    "#   .venv/bin/python -m tests.chart.requirements_lock > operator/requirements.lock\n"
)


@dataclasses.dataclass(frozen=True)
class Pin:
    """One locked package: its normalized name and exact version."""

    name: str
    version: str

    def line(self) -> str:
        return f"{self.name}=={self.version}"


def requirements_of(
    distribution: str, extras: frozenset[str] = frozenset()
) -> list[requirements.Requirement]:
    """The requirements of an installed distribution that apply here (markers evaluated, extras honoured)."""
    found = []
    for text in importlib.metadata.requires(distribution) or []:
        requirement = requirements.Requirement(text)
        marker = requirement.marker
        if marker is None or any(marker.evaluate({"extra": extra}) for extra in extras | {""}):
            found.append(requirement)
    return found


def runtime_closure(root: str = DISTRIBUTION) -> list[Pin]:
    """Every installed distribution `root` needs at run time, sorted by name, `root` itself excluded."""
    pins: dict[str, Pin] = {}
    wanted: list[tuple[str, frozenset[str]]] = [(root, frozenset())]
    seen: set[tuple[str, frozenset[str]]] = set()
    while wanted:
        name, extras = wanted.pop()
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        for requirement in requirements_of(name, extras):
            normalized = utils.canonicalize_name(requirement.name)
            version = importlib.metadata.version(requirement.name)
            pins[normalized] = Pin(normalized, version)
            wanted.append((requirement.name, frozenset(requirement.extras)))
    pins.pop(utils.canonicalize_name(root), None)
    return sorted(pins.values(), key=lambda pin: pin.name)


def render(pins: list[Pin]) -> str:
    return HEADER + "".join(pin.line() + "\n" for pin in pins)


def parse(text: str) -> list[Pin]:
    """The pins of a lock file; every non-comment line must be `name==version`."""
    pins = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        requirement = requirements.Requirement(line)
        specifiers = list(requirement.specifier)
        if len(specifiers) != 1 or specifiers[0].operator != "==" or requirement.marker or requirement.extras:
            raise ValueError(f"not an exact pin: {raw!r}")
        pins.append(Pin(utils.canonicalize_name(requirement.name), specifiers[0].version))
    return pins


if __name__ == "__main__":
    sys.stdout.write(render(runtime_closure()))
