"""webhook.clientAuth: the operator is told to require client certificates signed by the configured CA, and the
bundle it reads is the one given (a ConfigMap the chart writes, or an existing Secret). The TLS itself is tested
with real certificates in tests/integration/admission/test_client_certificates.py."""

from __future__ import annotations

import argparse
from typing import Any

import pytest
from superpod.controller import settings as operator_settings

from tests.chart import cases
from tests.chart import helm as chart_helm

CASE = "the webhook verifies its callers' client certificates"


def _pod(manifests: Any) -> dict[str, Any]:
    return chart_helm.one(list(manifests), "Deployment")["spec"]["template"]["spec"]


def _mounted_file(pod: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The file `--webhook-client-ca-file` names, and the volume it is in."""
    (container,) = pod["containers"]
    parser = argparse.ArgumentParser(exit_on_error=False)
    operator_settings.add_arguments(parser)
    path = operator_settings.from_sources(
        parser.parse_args(container["args"]), environ={}
    ).webhook_client_ca_file
    assert path is not None
    mount = next(m for m in container["volumeMounts"] if path.startswith(m["mountPath"] + "/"))
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    return path.removeprefix(mount["mountPath"] + "/"), volume


def test_callers_are_not_asked_for_certificates_by_default(rendered):
    manifests = list(rendered("the default values"))
    assert not any(
        arg.startswith("--webhook-client-ca-file") for arg in _pod(manifests)["containers"][0]["args"]
    )
    assert all("client-ca" not in m["metadata"]["name"] for m in chart_helm.find(manifests, "ConfigMap"))


def test_the_operator_reads_the_given_bundle_from_the_charts_config_map(rendered):
    manifests = list(rendered(CASE))
    name, volume = _mounted_file(_pod(manifests))
    config_map = next(
        m
        for m in chart_helm.find(manifests, "ConfigMap")
        if m["metadata"]["name"] == volume["configMap"]["name"]
    )
    assert config_map["data"][name] == cases.CLIENT_CA


def test_the_operator_reads_the_bundle_from_an_existing_secret(helm):
    manifests = helm.template(
        {"webhook": {"clientAuth": {"enabled": True, "secretName": "apiserver-client-ca"}}}
    )
    name, volume = _mounted_file(_pod(manifests))
    assert volume["secret"]["secretName"] == "apiserver-client-ca"
    assert {"key": "ca.crt", "path": name} in volume["secret"]["items"]
    assert all("client-ca" not in m["metadata"]["name"] for m in chart_helm.find(manifests, "ConfigMap"))


@pytest.mark.parametrize(
    "client_auth",
    [{"enabled": True}, {"enabled": True, "caBundle": "not a certificate"}],
    ids=["enabled without a CA", "a bundle that is not PEM"],
)
def test_the_values_schema_refuses_verification_without_a_ca(helm, client_auth):
    with pytest.raises(chart_helm.RenderError):
        helm.template({"webhook": {"clientAuth": client_auth}})
