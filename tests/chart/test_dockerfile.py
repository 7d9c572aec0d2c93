"""operator/Dockerfile follows the image rules (checked by parsing: no Docker engine here), and the lock it
installs pins, with hashes, the runtime dependencies declared in pyproject.toml at exactly the versions the
test venv holds."""

from __future__ import annotations

import ast
import fnmatch
import importlib.metadata
import pathlib
import re
import sys
import tomllib

import pytest
import setuptools
from packaging import requirements, utils

from tests import conftest
from tests.chart import dockerfile_lint, requirements_lock

DOCKERFILE = conftest.ROOT / "operator" / "Dockerfile"
LOCK = conftest.ROOT / dockerfile_lint.LOCK_FILE
BUILD_LOCK = conftest.ROOT / dockerfile_lint.BUILD_LOCK_FILE
BASE = "python:3.11.14-slim-bookworm@sha256:"


def test_the_dockerfile_breaks_no_image_rule():
    assert dockerfile_lint.problems(DOCKERFILE.read_text()) == []


def test_the_image_runs_the_operator_as_uid_65532_like_the_chart():
    final = dockerfile_lint.stages(DOCKERFILE.read_text())[-1]
    users = [i.arguments for i in final.instructions if i.keyword == "USER"]
    assert users == ["65532:65532"]


# Each case breaks one rule in a copy of the real Dockerfile: the lint must notice, or it proves nothing.
MUTATIONS = {
    "a final stage without USER runs as root": (
        lambda text: text.replace("USER 65532:65532\n", ""),
        "sets no USER",
    ),
    "a final stage running as root is rejected": (
        lambda text: text.replace("USER 65532:65532", "USER root"),
        "numeric non-root uid",
    ),
    "apt-get install in the final stage is rejected": (
        lambda text: text.replace(
            "USER 65532:65532", "RUN apt-get update && apt-get install -y gcc\nUSER 65532:65532"
        ),
        "installs OS packages",
    ),
    "build tools in the final stage are rejected": (
        lambda text: text.replace("USER 65532:65532", "RUN make all\nUSER 65532:65532"),
        "build tools ['make']",
    ),
    "an unpinned base image is rejected": (
        lambda text: text.replace("python:3.11.14-slim-bookworm", "python:3.11-slim"),
        "not pinned to an exact version tag",
    ),
    "the latest tag is rejected": (
        lambda text: text.replace("python:3.11.14-slim-bookworm", "python:latest"),
        "not pinned to an exact version tag",
    ),
    "a base image by tag only is rejected": (
        lambda text: re.sub(r"@sha256:[0-9a-f]{64}", "", text),
        "not pinned by digest",
    ),
    "installing without the lock file is rejected": (
        lambda text: text.replace("--requirement operator/requirements.lock", "kopf kubernetes"),
        "pinned dependencies from operator/requirements.lock",
    ),
    "installing the lock without hash checking is rejected": (
        lambda text: text.replace(
            "--require-hashes \\\n       --requirement operator/requirements.lock",
            "--requirement operator/requirements.lock",
        ),
        "installs operator/requirements.lock without --require-hashes",
    ),
    "installing the build tools without hash checking is rejected": (
        lambda text: text.replace(
            "--require-hashes \\\n       --requirement operator/build-requirements.lock",
            "--requirement operator/build-requirements.lock",
        ),
        "installs operator/build-requirements.lock without --require-hashes",
    ),
    "building the wheel with unpinned build tools is rejected": (
        lambda text: text.replace("--no-build-isolation ", ""),
        "use --no-build-isolation",
    ),
    "a single-stage build is rejected": (
        lambda text: text.split("FROM ${PYTHON_IMAGE} AS runtime")[0],
        "not multi-stage",
    ),
    "a shell-form entrypoint is rejected": (
        lambda text: text.replace('ENTRYPOINT ["superpod", "run"]', "ENTRYPOINT superpod run"),
        "ENTRYPOINT",
    ),
    "copying sources into the final stage is rejected": (
        lambda text: text.replace("USER 65532:65532", "COPY operator /src\nUSER 65532:65532"),
        "copies from the build context",
    ),
}


@pytest.mark.parametrize("case", MUTATIONS)
def test_the_lint_rejects_a_broken_dockerfile(case):
    mutate, expected = MUTATIONS[case]
    broken = mutate(DOCKERFILE.read_text())
    assert broken != DOCKERFILE.read_text(), "the mutation no longer applies to the Dockerfile"
    found = dockerfile_lint.problems(broken)
    assert any(expected in problem for problem in found), found


def _lock() -> dict[str, str]:
    return {pin.name: pin.version for pin in requirements_lock.parse(LOCK.read_text())}


def test_the_lock_pins_every_declared_runtime_dependency_within_its_range():
    declared = tomllib.loads((conftest.ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    lock = _lock()
    for text in declared:
        requirement = requirements.Requirement(text)
        name = utils.canonicalize_name(requirement.name)
        assert name in lock, f"{name} is missing from {LOCK.name}: regenerate it (see its header)"
        assert requirement.specifier.contains(lock[name], prereleases=True), (
            f"{name}=={lock[name]} does not satisfy {requirement.specifier}: regenerate {LOCK.name}"
        )


def test_the_lock_holds_no_development_tools():
    dev = tomllib.loads((conftest.ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"][
        "dev"
    ]
    dev_names = {utils.canonicalize_name(requirements.Requirement(text).name) for text in dev}
    runtime_names = {pin.name for pin in requirements_lock.runtime_closure()}
    assert set(_lock()) & (dev_names - runtime_names) == set()


def test_the_lock_is_closed_over_the_dependencies_of_each_package_it_pins():
    """Where the venv has a locked package at its locked version, its own requirements are locked too."""
    lock = _lock()
    checked = 0
    for name, version in lock.items():
        try:
            installed = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        if installed != version:
            continue  # the venv moved on; the pin ranges are checked above
        checked += 1
        for requirement in requirements_lock.requirements_of(name):
            assert utils.canonicalize_name(requirement.name) in lock, f"{name} needs {requirement.name}"
    assert checked, "no locked package is installed at its locked version: regenerate the lock"


def test_a_lock_line_without_an_exact_pin_is_refused():
    with pytest.raises(ValueError, match="not an exact pin"):
        requirements_lock.parse("kopf>=1.45\n")


def test_the_test_venv_holds_exactly_the_locked_runtime_dependencies():
    """What the tests run on is what the image installs: same packages, same versions, nothing missing."""
    installed = {pin.name: pin.version for pin in requirements_lock.runtime_closure()}
    assert installed == _lock(), (
        "the venv and operator/requirements.lock differ: run `make setup` (it installs the lock), or "
        "regenerate the lock after an upgrade (see its header)"
    )


@pytest.mark.parametrize("path", [LOCK, BUILD_LOCK], ids=lambda path: path.name)
def test_every_pin_carries_sha256_hashes(path):
    pins = requirements_lock.parse(path.read_text())
    assert pins
    for pin in pins:
        assert pin.hashes, f"{pin.name} has no --hash in {path.name}"
        assert all(re.fullmatch(r"[0-9a-f]{64}", digest) for digest in pin.hashes), pin


def test_the_build_lock_pins_the_build_tools_pyproject_asks_for():
    declared = tomllib.loads((conftest.ROOT / "pyproject.toml").read_text())["build-system"]["requires"]
    pins = {pin.name: pin.version for pin in requirements_lock.parse(BUILD_LOCK.read_text())}
    assert pins == requirements_lock.BUILD_TOOLS
    for text in declared:
        requirement = requirements.Requirement(text)
        name = utils.canonicalize_name(requirement.name)
        assert requirement.specifier.contains(pins[name]), f"{name}=={pins[name]} misses {requirement}"


def test_a_lock_round_trips_with_its_hashes():
    pins = [
        requirements_lock.Pin("kopf", "1.45.2", ("a" * 64, "b" * 64)),
        requirements_lock.Pin("idna", "3.2"),
    ]
    assert requirements_lock.parse(requirements_lock.render(pins)) == pins


def test_a_lock_option_other_than_a_sha256_hash_is_refused():
    with pytest.raises(ValueError, match="only --hash=sha256"):
        requirements_lock.parse("kopf==1.45.2 --index-url=https://example.invalid/simple\n")


@pytest.mark.parametrize(
    ("filename", "installable"),
    [
        ("aiohttp-3.14.5-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl", True),
        ("aiohttp-3.14.5-cp311-cp311-macosx_11_0_arm64.whl", True),
        ("aiohttp-3.14.5-cp312-cp312-manylinux_2_17_x86_64.whl", False),
        ("cryptography-50.0.2-cp39-abi3-manylinux_2_28_aarch64.whl", True),
        ("cryptography-50.0.2-cp313-abi3-manylinux_2_28_aarch64.whl", False),
        ("kopf-1.45.2-py3-none-any.whl", True),
        ("six-1.17.0-py2.py3-none-any.whl", True),
        ("kopf-1.45.2.tar.gz", True),
        ("kopf-1.45.2-py2-none-any.whl", False),
    ],
)
def test_the_lock_hashes_the_files_cpython_3_11_can_install(filename, installable):
    assert requirements_lock.installable(filename) is installable


def test_hashes_come_from_the_pinned_release_only():
    files = [
        {"filename": "kopf-1.45.2-py3-none-any.whl", "hashes": {"sha256": "1" * 64}},
        {"filename": "kopf-1.45.2.tar.gz", "hashes": {"sha256": "2" * 64}},
        {"filename": "kopf-1.45.1-py3-none-any.whl", "hashes": {"sha256": "3" * 64}},
        {"filename": "kopf-1.45.2-cp312-cp312-win_amd64.whl", "hashes": {"sha256": "4" * 64}},
        {"filename": "kopf-1.45.2-py3-none-any.whl", "hashes": {"sha256": "5" * 64}, "yanked": "broken"},
    ]
    (pin,) = requirements_lock.with_hashes([requirements_lock.Pin("kopf", "1.45.2")], lambda _: files)
    assert pin.hashes == ("1" * 64, "2" * 64)
    with pytest.raises(LookupError, match=r"kopf==9\.9"):
        requirements_lock.with_hashes([requirements_lock.Pin("kopf", "9.9")], lambda _: files)


def test_the_image_is_built_from_a_base_pinned_by_tag_and_digest():
    for stage in dockerfile_lint.stages(DOCKERFILE.read_text()):
        assert stage.image.startswith(BASE) and re.fullmatch(r"[0-9a-f]{64}", stage.image.removeprefix(BASE))


def _dockerignore_includes(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parent directories decides."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    included = True
    for pattern in patterns:
        negated = pattern.startswith("!")
        glob = pattern.removeprefix("!").rstrip("/")
        if any(fnmatch.fnmatchcase(candidate, glob) for candidate in candidates):
            included = negated
    return included


def _dockerignore() -> list[str]:
    lines = (conftest.ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def _copied(dockerfile: str) -> list[str]:
    """What the builder stage copies from the build context."""
    builder = dockerfile_lint.stages(dockerfile)[0]
    return [
        word
        for instruction in builder.instructions
        if instruction.keyword == "COPY" and "--from=" not in instruction.arguments
        for word in instruction.arguments.split()[:-1]
    ]


def test_the_build_context_holds_what_the_dockerfile_copies_and_nothing_else():
    patterns = _dockerignore()
    sources = _copied(DOCKERFILE.read_text())
    assert sources, "the builder copies nothing from the context"
    for source in sources:
        assert (conftest.ROOT / source).exists(), source
        assert _dockerignore_includes(source, patterns), f".dockerignore leaves out {source}"
    assert _dockerignore_includes("operator/superpod/cli.py", patterns)
    for left_out in (
        ".venv/bin/python",
        ".git/HEAD",
        "tests/conftest.py",
        "operator/superpod/__pycache__/cli.pyc",
    ):
        assert not _dockerignore_includes(left_out, patterns), (
            f"{left_out} would be sent to the Docker daemon"
        )


# The operator's own files, and the lock: all the image is made of.
OPERATOR_INPUTS = {
    "pyproject.toml",
    "README.md",
    "operator/requirements.lock",
    "operator/build-requirements.lock",
    "operator/superpod",
}
OPERATOR = conftest.ROOT / "operator" / "superpod"
# Imported only inside the functions of development tools, which say what to install when it is missing.
OPTIONAL = {"matplotlib": "superpod plan/map/defrag --png and metrics/render_dashboard.py"}


def third_party_imports(package: pathlib.Path) -> dict[str, set[str]]:
    """Top-level modules imported anywhere below `package` (in functions too), other than the standard
    library's and the package's own, with the files that import each."""
    found: dict[str, set[str]] = {}
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.partition(".")[0]
                if top not in sys.stdlib_module_names and top != package.name:
                    found.setdefault(top, set()).add(str(path.relative_to(package.parent)))
    return found


def test_the_image_is_built_from_the_operators_files_and_the_lock_only():
    assert set(_copied(DOCKERFILE.read_text())) == OPERATOR_INPUTS
    setup = tomllib.loads((conftest.ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    where = conftest.ROOT / setup["find"]["where"][0]
    packages = setuptools.find_packages(where=str(where), include=setup["find"]["include"])
    assert packages and all(name.split(".")[0] == "superpod" for name in packages), packages


def test_a_copy_of_anything_but_the_operator_is_found():
    text = DOCKERFILE.read_text().replace(
        "COPY operator/superpod operator/superpod",
        "COPY operator/superpod operator/superpod\nCOPY sandbox sandbox",
    )
    assert set(_copied(text)) - OPERATOR_INPUTS == {"sandbox"}


def test_every_module_the_operator_imports_is_in_the_lock():
    """What `superpod` imports, the image holds: no command fails there for want of a package (as `superpod
    sandbox` did with celpy when the sandbox shipped inside the operator)."""
    provided = importlib.metadata.packages_distributions()
    lock = set(_lock())
    imported = third_party_imports(OPERATOR)
    assert "kopf" in imported and "pydantic" in imported  # the walk sees the operator's imports
    for module, files in imported.items():
        if module in OPTIONAL:
            continue
        distributions = {utils.canonicalize_name(name) for name in provided.get(module, [])}
        assert distributions & lock, f"{module} (imported by {sorted(files)}) is not in {LOCK.name}"


def test_an_import_the_lock_lacks_is_found(tmp_path):
    package = tmp_path / "superpod"
    (package / "commands").mkdir(parents=True)
    (package / "commands" / "cel.py").write_text(
        "import json\nfrom superpod import api\n\n\ndef check():\n    import celpy.celparser\n"
    )
    assert third_party_imports(package) == {"celpy": {"superpod/commands/cel.py"}}
