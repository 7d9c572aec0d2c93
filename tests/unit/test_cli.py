import subprocess
import sys
import textwrap

import pytest
from superpod import cli
from superpod.commands import sandboxed

from tests.conftest import ROOT

# Runs the CLI in a fresh interpreter in which `superpod_sandbox` cannot be imported, as on a machine (or in the
# operator image) where only the operator is installed.
WITHOUT_SANDBOX = textwrap.dedent(
    """
    import importlib.abc, sys

    class NoSandbox(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "superpod_sandbox" or name.startswith("superpod_sandbox."):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, NoSandbox())
    from superpod import cli
    sys.exit(cli.main(sys.argv[1:]))
    """
)


def without_sandbox(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", WITHOUT_SANDBOX, *argv], capture_output=True, text=True, cwd=ROOT, timeout=60
    )


def test_every_listed_command_has_help(capsys):
    parser = cli.build_parser()
    for name in cli.all_commands():
        try:
            parser.parse_args([name, "--help"])
        except SystemExit as exc:
            assert exc.code == 0
        assert name in capsys.readouterr().out


def test_no_command_prints_usage_and_exits_2(capsys):
    assert cli.main([]) == 2
    assert "COMMAND" in capsys.readouterr().out


def test_the_sandbox_commands_are_offered_when_the_sandbox_is_installed(capsys):
    assert set(sandboxed.NAMES) <= set(cli.all_commands())
    with pytest.raises(SystemExit) as exc:
        cli.main(["bench", "e2e", "--help"])
    assert exc.value.code == 0
    assert "--partitions" in capsys.readouterr().out


def test_the_operator_names_exactly_the_commands_the_sandbox_offers():
    package = sandboxed.package()
    assert package is not None
    assert sorted(package.COMMANDS) == sorted(sandboxed.NAMES)


@pytest.mark.parametrize(
    "argv",
    [
        ["demo"],
        ["demo", "--once", "--profile", "atlas-960"],
        ["sandbox", "--help"],
        ["sim", "up"],
        ["bench", "e2e"],
    ],
    ids=" ".join,
)
def test_without_the_sandbox_its_commands_answer_with_one_line_saying_what_to_install(argv):
    done = without_sandbox(*argv)
    command = " ".join(argv[:2] if argv[0] == "bench" else argv[:1])
    assert done.returncode == 1
    assert done.stdout == ""
    assert (
        done.stderr == f"superpod {command}: needs the superpod-sandbox package (pip install -e ./sandbox)\n"
    )


def test_without_the_sandbox_the_operator_commands_still_work():
    help_text = without_sandbox("--help")
    assert help_text.returncode == 0, help_text.stderr
    assert "demo" in help_text.stdout and "not installed" in help_text.stdout
    crds = without_sandbox("crds", "--check")
    assert crds.returncode == 0, crds.stderr


def test_an_error_is_one_readable_line_even_without_a_message():
    assert cli.error_line(TimeoutError()) == "TimeoutError"
    assert cli.error_line(TimeoutError("GET /version: no answer within 120 s")) == (
        "TimeoutError: GET /version: no answer within 120 s"
    )
    assert cli.error_line(RuntimeError("two\n  lines")) == "RuntimeError: two lines"
