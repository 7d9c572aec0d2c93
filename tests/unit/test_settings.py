import argparse

import pytest
from superpod.controller import settings


def _parse(*argv):
    parser = argparse.ArgumentParser()
    settings.add_arguments(parser)
    return parser.parse_args(argv)


def test_defaults_without_flags_or_environment():
    assert settings.from_sources(_parse(), environ={}) == settings.OperatorSettings()


def test_environment_overrides_defaults_and_flags_override_environment():
    env = {"SUPERPOD_METRICS_PORT": "9000", "SUPERPOD_STANDALONE": "true", "SUPERPOD_NAMESPACE": "team-a"}
    config = settings.from_sources(_parse("--metrics-port", "9100"), environ=env)
    assert (config.metrics_port, config.standalone, config.namespace) == (9100, True, "team-a")


def test_an_empty_configmap_selector_means_every_configmap_and_other_empty_values_mean_the_default():
    assert settings.from_sources(_parse(), environ={}).configmap_selector == "mx-consumer-cim=true"
    assert settings.from_sources(_parse("--configmap-selector", ""), environ={}).configmap_selector == ""
    assert (
        settings.from_sources(_parse(), environ={"SUPERPOD_CONFIGMAP_SELECTOR": ""}).configmap_selector == ""
    )
    assert settings.from_sources(_parse("--peering", ""), environ={}).peering == "superpod-operator"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--metrics-port", "eighty"], "metrics-port: not a valid value"),
        (["--webhook-config", "sometimes"], "webhook-config must be managed or external"),
    ],
)
def test_bad_values_say_which_setting(argv, message):
    with pytest.raises(ValueError, match=message):
        settings.from_sources(_parse(*argv), environ={})


def test_json_log_lines_are_one_object_each():
    import json
    import logging

    from superpod.commands import run

    record = logging.LogRecord("superpod", logging.WARNING, __file__, 1, "placed %s", ("team-a/train",), None)
    entry = json.loads(run.JsonFormatter().format(record))
    assert entry["level"] == "WARNING" and entry["message"] == "placed team-a/train"
