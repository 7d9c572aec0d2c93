"""Where the operator listens and who may reach it: the ports the chart passes to `superpod run` are the ones
its containers, Service and NetworkPolicy name, and the NetworkPolicy (off by default) admits ingress only to
the webhook and metrics ports, each from its own peers, never from everyone."""

from __future__ import annotations

import argparse
from typing import Any

import pytest
from superpod.controller import settings as operator_settings

from tests.chart import cases
from tests.chart import helm as chart_helm

API_SERVER = [{"ipBlock": {"cidr": "10.0.0.0/24"}}]
PROMETHEUS = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]
MOVED = {
    "operator": {"listenAddress": "::"},
    "ports": {"health": 9091, "metrics": 9090, "webhook": 10443},
    "networkPolicy": {"enabled": True, "webhook": {"from": API_SERVER}, "metrics": {"from": PROMETHEUS}},
}


def _policy(helm: chart_helm.Helm, values: dict[str, Any]) -> dict[str, Any]:
    return chart_helm.one(helm.template(values), "NetworkPolicy")


def _container(manifests: list[dict[str, Any]]) -> dict[str, Any]:
    (container,) = chart_helm.one(manifests, "Deployment")["spec"]["template"]["spec"]["containers"]
    return container


def test_the_operator_listens_where_the_chart_says(helm):
    """The operator's own parser reads the chart's flags: the ports it binds are the named container ports the
    Service, the probes and the NetworkPolicy send to, on the configured address."""
    manifests = helm.template(MOVED)
    container = _container(manifests)
    parser = argparse.ArgumentParser(exit_on_error=False)
    operator_settings.add_arguments(parser)
    settings = operator_settings.from_sources(parser.parse_args(container["args"]), environ={})
    named = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert named == {
        "health": settings.health_port,
        "metrics": settings.metrics_port,
        "webhook": settings.webhook_port,
    }
    assert (settings.health_port, settings.metrics_port, settings.webhook_port) == (9091, 9090, 10443)
    assert settings.webhook_host == settings.bind_address == "::"
    service = chart_helm.one(manifests, "Service")
    assert {port["targetPort"] for port in service["spec"]["ports"]} == {"metrics", "webhook"}
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["port"] == "health"
    policy = chart_helm.one(manifests, "NetworkPolicy")
    assert {port["port"] for rule in policy["spec"]["ingress"] for port in rule["ports"]} <= set(named)


def test_there_is_no_network_policy_by_default(rendered):
    assert chart_helm.find(list(rendered("the default values")), "NetworkPolicy") == []


def test_ingress_reaches_only_the_webhook_and_metrics_ports_each_from_its_own_peers(helm):
    manifests = helm.template(MOVED)
    policy = chart_helm.one(manifests, "NetworkPolicy")
    spec = policy["spec"]
    assert spec["policyTypes"] == ["Ingress"]  # egress (to the API server) is left alone
    pod_labels = chart_helm.one(manifests, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert spec["podSelector"]["matchLabels"].items() <= pod_labels.items()
    rules = {tuple(port["port"] for port in rule["ports"]): rule["from"] for rule in spec["ingress"]}
    assert rules == {("webhook",): API_SERVER, ("metrics",): PROMETHEUS}


def test_a_port_without_peers_is_closed_not_opened_to_everyone(helm):
    """An ingress rule with an empty `from` admits every source: the chart must leave such a rule out."""
    only_webhook = _policy(helm, {"networkPolicy": {"enabled": True, "webhook": {"from": API_SERVER}}})
    assert [rule["ports"] for rule in only_webhook["spec"]["ingress"]] == [
        [{"port": "webhook", "protocol": "TCP"}]
    ]
    for rule in only_webhook["spec"]["ingress"]:
        assert rule["from"], rule
    closed = _policy(helm, {"networkPolicy": {"enabled": True}})
    assert closed["spec"]["ingress"] == []
    assert closed["spec"]["policyTypes"] == ["Ingress"]


def test_the_health_port_opens_only_to_listed_peers(helm):
    nodes = [{"ipBlock": {"cidr": "192.168.0.0/16"}}]
    policy = _policy(helm, {"networkPolicy": {"enabled": True, "health": {"from": nodes}}})
    assert policy["spec"]["ingress"] == [{"ports": [{"port": "health", "protocol": "TCP"}], "from": nodes}]


@pytest.mark.parametrize(
    "peers",
    [
        [{"cidr": "10.0.0.0/24"}],  # an ipBlock's field without the ipBlock
        [{}],  # an empty peer would match everything
        "10.0.0.0/24",
    ],
    ids=["not a peer", "an empty peer", "not a list"],
)
def test_the_values_schema_refuses_what_is_not_a_list_of_peers(helm, peers):
    with pytest.raises(chart_helm.RenderError):
        helm.template({"networkPolicy": {"enabled": True, "webhook": {"from": peers}}})


def test_every_feature_renders_the_policy_checked_against_the_kubernetes_schemas():
    """The value set every schema test renders has the policy on (so it is validated for every version)."""
    assert cases.EVERY_FEATURE["networkPolicy"]["enabled"] is True
