"""Custom resources through the `kubernetes` client: served once the CRD exists, schema, status, generation."""

from __future__ import annotations

import json

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from tests.integration.sandbox import widgets


@pytest.fixture
def api_client(sandbox_thread):
    api_client = config.new_client_from_config(config_file=sandbox_thread.kubeconfig)
    client.ApiextensionsV1Api(api_client).create_custom_resource_definition(widgets.crd())
    yield api_client
    api_client.close()


@pytest.fixture
def custom(api_client):
    return client.CustomObjectsApi(api_client)


def create(custom, body, **kwargs):
    return custom.create_namespaced_custom_object(
        widgets.GROUP, widgets.VERSION, "default", widgets.PLURAL, body, **kwargs
    )


def failure(call):
    with pytest.raises(ApiException) as caught:
        call()
    return caught.value.status, json.loads(caught.value.body)


def test_a_created_crd_is_established_and_discoverable(api_client):
    crd = client.ApiextensionsV1Api(api_client).read_custom_resource_definition("widgets.example.dev")
    conditions = {c.type: c.status for c in crd.status.conditions}
    assert conditions == {"NamesAccepted": "True", "Established": "True"}
    resources = client.CustomObjectsApi(api_client).get_api_resources(widgets.GROUP, widgets.VERSION)
    names = {r.name: r for r in resources.resources}
    assert set(names) == {"widgets", "widgets/status"}
    assert names["widgets"].short_names == ["wd"] and names["widgets"].categories == ["gadgets"]


def test_defaults_are_applied_and_generation_starts_at_one(custom):
    created = create(custom, widgets.widget("w"))
    assert created["spec"]["color"] == "blue"
    assert created["metadata"]["generation"] == 1


@pytest.mark.parametrize(
    ("spec", "field", "message"),
    [
        (
            {"size": 0},
            "spec.size",
            "Invalid value: 0: spec.size in body should be greater than or equal to 1",
        ),
        ({"size": 101}, "spec", 'Invalid value: "object": size must be at most 100'),
    ],
)
def test_schema_and_cel_violations_are_422_with_causes(custom, spec, field, message):
    body = widgets.widget("w")
    body["spec"] = spec
    status, answer = failure(lambda: create(custom, body))
    assert status == 422 and answer["reason"] == "Invalid"
    assert answer["message"].startswith('Widget.example.dev "w" is invalid: ')
    assert answer["details"]["causes"][0]["field"] == field
    assert answer["details"]["kind"] == "Widget" and answer["details"]["group"] == "example.dev"


def test_a_transition_rule_sees_the_old_object(custom):
    create(custom, widgets.widget("w", owner="ann"))
    status, answer = failure(
        lambda: custom.patch_namespaced_custom_object(
            widgets.GROUP, widgets.VERSION, "default", widgets.PLURAL, "w", {"spec": {"owner": "bob"}}
        )
    )
    assert status == 422 and "owner is immutable" in answer["message"]


def test_unknown_fields_are_pruned_or_refused_with_strict_validation(custom):
    body = widgets.widget("w")
    body["spec"]["extra"] = 1
    assert "extra" not in create(custom, body)["spec"]
    body["metadata"]["name"] = "w2"
    status, answer = failure(lambda: create(custom, body, field_validation="Strict"))
    assert status == 400
    assert (
        answer["message"]
        == 'Widget in version "v1" cannot be handled as a Widget: strict decoding error: unknown field "spec.extra"'
    )


def test_status_is_isolated_from_the_main_resource(custom):
    body = widgets.widget("w")
    body["status"] = {"phase": "Ignored"}
    created = create(custom, body)
    assert "status" not in created
    args = (widgets.GROUP, widgets.VERSION, "default", widgets.PLURAL, "w")
    after_status = custom.patch_namespaced_custom_object_status(
        *args, {"status": {"phase": "Ready"}, "spec": {"size": 50}}
    )
    assert after_status["status"] == {"phase": "Ready"} and after_status["spec"]["size"] == 3
    assert after_status["metadata"]["generation"] == 1
    after_main = custom.patch_namespaced_custom_object(
        *args, {"status": {"phase": "Lost"}, "spec": {"size": 4}}
    )
    assert after_main["status"] == {"phase": "Ready"} and after_main["spec"]["size"] == 4
    assert after_main["metadata"]["generation"] == 2


def test_metadata_changes_do_not_bump_generation(custom):
    create(custom, widgets.widget("w"))
    patched = custom.patch_namespaced_custom_object(
        widgets.GROUP, widgets.VERSION, "default", widgets.PLURAL, "w", {"metadata": {"labels": {"a": "b"}}}
    )
    assert patched["metadata"]["generation"] == 1


def test_a_failed_json_patch_test_is_422(custom):
    create(custom, widgets.widget("w"))
    operations = [
        {"op": "test", "path": "/metadata/finalizers", "value": ["x"]},
        {"op": "add", "path": "/metadata/finalizers", "value": ["y"]},
    ]
    status, answer = failure(
        lambda: custom.patch_namespaced_custom_object(
            widgets.GROUP,
            widgets.VERSION,
            "default",
            widgets.PLURAL,
            "w",
            operations,
            _content_type="application/json-patch+json",
        )
    )
    assert (status, answer["reason"]) == (422, "Invalid")


def test_a_json_patch_test_that_holds_applies_the_patch(custom):
    create(custom, widgets.widget("w"))
    operations = [
        {"op": "test", "path": "/spec/size", "value": 3},
        {"op": "replace", "path": "/spec/size", "value": 7},
    ]
    patched = custom.patch_namespaced_custom_object(
        widgets.GROUP,
        widgets.VERSION,
        "default",
        widgets.PLURAL,
        "w",
        operations,
        _content_type="application/json-patch+json",
    )
    assert patched["spec"]["size"] == 7


def test_deleting_the_crd_deletes_its_objects_and_stops_serving(custom, api_client):
    create(custom, widgets.widget("w"))
    client.ApiextensionsV1Api(api_client).delete_custom_resource_definition("widgets.example.dev")
    import time

    deadline = time.monotonic() + 5
    while _exists(api_client) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _exists(api_client)
    status, _ = failure(
        lambda: custom.list_namespaced_custom_object(
            widgets.GROUP, widgets.VERSION, "default", widgets.PLURAL
        )
    )
    assert status == 404


def _exists(api_client):
    try:
        client.ApiextensionsV1Api(api_client).read_custom_resource_definition("widgets.example.dev")
    except ApiException:
        return False
    return True
