"""A parser-level lint of operator/Dockerfile, for machines without a Docker engine or hadolint.

It reads the instructions (with line continuations and `ARG` defaults before the first `FROM`), splits them
into stages, and reports each broken image rule as one sentence: the final stage runs as non-root uid 65532,
installs no packages and holds no build tools, every base image has an exact version tag and a digest, the
builder makes a wheel without fetching unpinned build tools and installs the pinned lock files with
`--require-hashes`, and the entrypoint is `superpod run` in exec form.
What it cannot check: that the image builds, that the tag and digest exist in the registry (and name the same
image), and what the base image holds.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shlex

LOCK_FILE = "operator/requirements.lock"
BUILD_LOCK_FILE = "operator/build-requirements.lock"
BUILD_TOOLS = frozenset(
    {
        "gcc",
        "g++",
        "cc",
        "clang",
        "make",
        "cmake",
        "build-essential",
        "git",
        "python3-dev",
        "libc6-dev",
        "cargo",
    }
)
PACKAGE_MANAGERS = re.compile(r"\b(apt-get|apt|apk|dnf|yum|microdnf)\s+(install|add)\b")
EXACT_VERSION_TAG = re.compile(r"^[^:@/]+(/[^:@]+)*:\d+\.\d+\.\d+[^:]*$")
DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")


@dataclasses.dataclass(frozen=True)
class Instruction:
    keyword: str  # upper-case, e.g. RUN
    arguments: str  # the rest of the logical line, continuations joined
    line: int  # 1-based line where the instruction starts


@dataclasses.dataclass(frozen=True)
class Stage:
    image: str  # the FROM reference with ARG defaults substituted
    name: str | None
    instructions: tuple[Instruction, ...]


def instructions(text: str) -> list[Instruction]:
    """The logical instructions of a Dockerfile: comments dropped, backslash continuations joined."""
    found: list[Instruction] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue  # comment lines inside a continued instruction are ignored by Docker too
        if not pending:
            start = number
        continued = stripped.endswith("\\")
        pending.append(stripped[:-1].strip() if continued else stripped)
        if not continued:
            logical = " ".join(part for part in pending if part)
            keyword, _, arguments = logical.partition(" ")
            found.append(Instruction(keyword.upper(), arguments.strip(), start))
            pending = []
    if pending:
        raise ValueError(f"instruction starting on line {start} ends with a continuation")
    return found


def stages(text: str) -> list[Stage]:
    """The build stages, in order, with `${ARG}` in FROM lines replaced by the global ARG defaults."""
    global_args: dict[str, str] = {}
    result: list[Stage] = []
    image: str | None = None
    name: str | None = None
    body: list[Instruction] = []
    for instruction in instructions(text):
        if instruction.keyword == "ARG" and image is None:
            key, _, default = instruction.arguments.partition("=")
            global_args[key.strip()] = default.strip().strip('"')
            continue
        if instruction.keyword == "FROM":
            if image is not None:
                result.append(Stage(image, name, tuple(body)))
            words = [word for word in instruction.arguments.split() if not word.startswith("--")]
            image = re.sub(r"\$\{?(\w+)\}?", lambda m: global_args.get(m.group(1), m.group(0)), words[0])
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            body = []
            continue
        if image is None:
            raise ValueError(f"line {instruction.line}: {instruction.keyword} before the first FROM")
        body.append(instruction)
    if image is not None:
        result.append(Stage(image, name, tuple(body)))
    return result


def _exec_form(arguments: str) -> list[str] | None:
    try:
        value = json.loads(arguments)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, list) and all(isinstance(item, str) for item in value) else None


def problems(text: str) -> list[str]:
    """Every broken rule, one sentence each; empty when the Dockerfile follows them all."""
    found: list[str] = []
    all_stages = stages(text)
    if len(all_stages) < 2:
        return ["the Dockerfile is not multi-stage: a builder stage and a runtime stage are expected"]
    stage_names = {stage.name for stage in all_stages if stage.name}
    for stage in all_stages:
        if stage.image in stage_names:
            continue
        tag = DIGEST.sub("", stage.image)
        if not EXACT_VERSION_TAG.match(tag):
            found.append(f"base image {stage.image!r} is not pinned to an exact version tag")
        if not DIGEST.search(stage.image):
            found.append(f"base image {stage.image!r} is not pinned by digest (@sha256:...)")
    builder, final = all_stages[:-1], all_stages[-1]

    builder_runs = " ".join(
        i.arguments for stage in builder for i in stage.instructions if i.keyword == "RUN"
    )
    if not re.search(r"pip wheel|-m build\b", builder_runs):
        found.append("no builder stage builds a wheel (pip wheel or python -m build)")
    copied = " ".join(i.arguments for stage in builder for i in stage.instructions if i.keyword == "COPY")
    for lock in (LOCK_FILE, BUILD_LOCK_FILE):
        installs = [  # each command of the RUN lines (split at && and ;) that installs the lock
            command
            for stage in builder
            for i in stage.instructions
            if i.keyword == "RUN"
            for command in re.split(r"&&|;", i.arguments)
            if re.search(rf"(--requirement|-r)[= ]\S*{re.escape(lock)}", command)
        ]
        if not installs:
            found.append(f"the builder does not install the pinned dependencies from {lock}")
        elif not all("--require-hashes" in arguments for arguments in installs):
            found.append(f"the builder installs {lock} without --require-hashes")
        if lock not in copied:
            found.append(f"{lock} is never copied into a builder stage")
    if re.search(r"pip wheel", builder_runs) and "--no-build-isolation" not in builder_runs:
        found.append("pip wheel builds in isolation, fetching unpinned build tools; use --no-build-isolation")

    users = [i for i in final.instructions if i.keyword == "USER"]
    if not users:
        found.append("the final stage sets no USER, so it runs as root")
    else:
        user = users[-1].arguments.split(":")[0]
        if user in {"0", "root"} or not user.isdigit():
            found.append(f"the final stage runs as {user!r}: a numeric non-root uid (65532) is required")
        elif user != "65532":
            found.append(f"the final stage runs as uid {user}, the chart expects 65532")
    for instruction in final.instructions:
        if instruction.keyword == "RUN":
            if PACKAGE_MANAGERS.search(instruction.arguments):
                found.append(f"line {instruction.line}: the final stage installs OS packages")
            words = set(shlex.split(instruction.arguments.replace("&&", " ").replace(";", " ")))
            tools = sorted(words & BUILD_TOOLS)
            if tools:
                found.append(f"line {instruction.line}: the final stage uses build tools {tools}")
            if re.search(r"\bpip\b.*\binstall\b", instruction.arguments):
                found.append(
                    f"line {instruction.line}: the final stage runs pip install; copy the built venv"
                )
        if instruction.keyword in {"COPY", "ADD"} and "--from=" not in instruction.arguments:
            found.append(f"line {instruction.line}: the final stage copies from the build context")

    entrypoints = [i for i in final.instructions if i.keyword == "ENTRYPOINT"]
    if not entrypoints or _exec_form(entrypoints[-1].arguments) != ["superpod", "run"]:
        found.append('the final stage\'s ENTRYPOINT is not ["superpod", "run"] in exec form')
    return found
