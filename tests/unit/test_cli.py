from superpod import cli


def test_every_listed_command_has_help(capsys):
    parser = cli.build_parser()
    for name in cli.COMMANDS:
        try:
            parser.parse_args([name, "--help"])
        except SystemExit as exc:
            assert exc.code == 0
        assert name in capsys.readouterr().out


def test_no_command_prints_usage_and_exits_2(capsys):
    assert cli.main([]) == 2
    assert "COMMAND" in capsys.readouterr().out
