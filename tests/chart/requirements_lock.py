"""The runtime dependency lock of the container image and the test venv, computed from the installed venv.

`operator/requirements.lock` pins every package `superpod-operator` needs at run time (its declared
dependencies and everything they pull in, never the `dev` extra) at the version installed in the venv, each
with the sha256 of every file of that release CPython 3.11 can install (the wheels for 3.11 on any platform,
and the sdist), as PyPI's simple index lists them. The image installs it with `--require-hashes`, and so does
`make setup` before anything else, so the tests run on exactly these files. Regenerate it (PyPI reachable) with

    .venv/bin/python -m tests.chart.requirements_lock > operator/requirements.lock

`operator/build-requirements.lock` does the same for the tools that build the operator's wheel in the image
(`[build-system] requires` of pyproject.toml), at the versions named in `BUILD_TOOLS`:

    .venv/bin/python -m tests.chart.requirements_lock --build > operator/build-requirements.lock
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import sys
import urllib.request
from collections.abc import Callable, Iterable

from packaging import requirements, utils

DISTRIBUTION = "superpod-operator"
INDEX = "https://pypi.org/simple"
PYTHON = (3, 11)  # the image's and the test venv's interpreter (Debian 12's python3)
# the image's wheel is built with these (pyproject.toml's [build-system] requires them, unpinned)
BUILD_TOOLS = {"setuptools": "80.9.0", "wheel": "0.45.1"}
HEADER = (
    "# Runtime dependencies of superpod-operator, pinned with the sha256 of every file of each release CPython\n"
    "# 3.11 can install. The image (operator/Dockerfile) and the test venv (make setup) both install exactly\n"
    "# these with --require-hashes; tests/chart/test_dockerfile.py checks the venv holds them. Development\n"
    "# tools (the `dev` extra) are not included. Regenerate after changing dependencies in pyproject.toml or\n"
    "# upgrading the venv (PyPI reachable):\n"
    "#   .venv/bin/python -m tests.chart.requirements_lock > operator/requirements.lock\n"
)
BUILD_HEADER = (
    "# Tools that build the superpod-operator wheel in the image (pyproject.toml [build-system]), pinned with\n"
    "# hashes; operator/Dockerfile installs them with --require-hashes and builds without isolation.\n"
    "# Regenerate after changing BUILD_TOOLS in tests/chart/requirements_lock.py (PyPI reachable):\n"
    "#   .venv/bin/python -m tests.chart.requirements_lock --build > operator/build-requirements.lock\n"
)


@dataclasses.dataclass(frozen=True)
class Pin:
    """One locked package: its normalized name, exact version and the sha256 of the files it may come from."""

    name: str
    version: str
    hashes: tuple[str, ...] = ()

    def line(self) -> str:
        return " \\\n".join(
            [f"{self.name}=={self.version}", *(f"    --hash=sha256:{h}" for h in self.hashes)]
        )


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


def installable(filename: str, python: tuple[int, int] = PYTHON) -> bool:
    """Whether CPython `python` (any platform) may install the file: an sdist, or a wheel whose tags allow it."""
    if not filename.endswith(".whl"):
        return filename.endswith((".tar.gz", ".zip"))
    major, minor = python
    for tag in utils.parse_wheel_filename(filename)[3]:
        if tag.interpreter in (f"py{major}", f"py{major}{minor}", f"cp{major}{minor}"):
            return True
        cpython = tag.interpreter.startswith(f"cp{major}")
        if tag.abi == "abi3" and cpython and int(tag.interpreter[len(f"cp{major}") :] or 0) <= minor:
            return True  # the stable ABI of an older CPython 3 loads in this one
    return False


def index_files(name: str) -> list[dict[str, object]]:
    """The files of a project on PyPI's simple index (PEP 691 JSON)."""
    request = urllib.request.Request(
        f"{INDEX}/{name}/", headers={"Accept": "application/vnd.pypi.simple.v1+json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        files: list[dict[str, object]] = json.load(response)["files"]
    return files


def with_hashes(
    pins: Iterable[Pin], files_of: Callable[[str], list[dict[str, object]]] = index_files
) -> list[Pin]:
    """The pins with the sha256 of each installable file of their release."""
    hashed = []
    for pin in pins:
        found = set()
        for file in files_of(pin.name):
            filename = str(file["filename"])
            try:
                if file.get("yanked") or not installable(filename):
                    continue
                version = (
                    utils.parse_wheel_filename(filename)[1]
                    if filename.endswith(".whl")
                    else utils.parse_sdist_filename(filename)[1]
                )
            except (utils.InvalidWheelFilename, utils.InvalidSdistFilename):
                continue  # an old release named outside today's rules
            if str(version) == pin.version:
                found.add(str(file["hashes"]["sha256"]))  # type: ignore[index]
        if not found:
            raise LookupError(f"{pin.name}=={pin.version}: no file for CPython {PYTHON} on {INDEX}")
        hashed.append(Pin(pin.name, pin.version, tuple(sorted(found))))
    return hashed


def render(pins: list[Pin], header: str = HEADER) -> str:
    return header + "".join(pin.line() + "\n" for pin in pins)


def parse(text: str) -> list[Pin]:
    """The pins of a lock file; every requirement must be `name==version`, with `--hash=sha256:` options."""
    pins = []
    logical = text.replace("\\\n", " ")
    for raw in logical.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        words = line.split()
        hashes = tuple(word.removeprefix("--hash=sha256:") for word in words[1:])
        if any(word == h or not h for word, h in zip(words[1:], hashes, strict=True)):
            raise ValueError(f"only --hash=sha256: options may follow a pin: {raw!r}")
        requirement = requirements.Requirement(words[0])
        specifiers = list(requirement.specifier)
        if len(specifiers) != 1 or specifiers[0].operator != "==" or requirement.marker or requirement.extras:
            raise ValueError(f"not an exact pin: {raw!r}")
        pins.append(Pin(utils.canonicalize_name(requirement.name), specifiers[0].version, hashes))
    return pins


def main(argv: list[str]) -> None:
    if argv == ["--build"]:
        pins = [Pin(name, version) for name, version in sorted(BUILD_TOOLS.items())]
        sys.stdout.write(render(with_hashes(pins), BUILD_HEADER))
    elif not argv:
        sys.stdout.write(render(with_hashes(runtime_closure())))
    else:
        sys.exit("usage: python -m tests.chart.requirements_lock [--build]")


if __name__ == "__main__":
    main(sys.argv[1:])
