"""The structural schema prunes, defaults and validates custom resources with kube-apiserver's messages."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from superpod_sandbox.apiserver.formats import gotext
from superpod_sandbox.apiserver.schema import cel, structural

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "apiVersion": {"type": "string"},
        "kind": {"type": "string"},
        "metadata": {"type": "object"},
        "spec": {
            "type": "object",
            "required": ["npus"],
            "properties": {
                "npus": {"type": "integer", "minimum": 1, "maximum": 64},
                "ratio": {"type": "number", "exclusiveMinimum": True, "minimum": 0.5},
                "name": {"type": "string", "minLength": 2, "maxLength": 5, "pattern": "^[a-z]+$"},
                "mode": {"type": "string", "enum": ["Auto", "Manual"], "default": "Auto"},
                "when": {"type": "string", "format": "date-time"},
                "port": {"x-kubernetes-int-or-string": True},
                "tags": {
                    "type": "array",
                    "items": {"type": "string"},
                    "maxItems": 2,
                    "x-kubernetes-list-type": "set",
                },
                "slots": {
                    "type": "array",
                    "minItems": 1,
                    "x-kubernetes-list-type": "map",
                    "x-kubernetes-list-map-keys": ["id"],
                    "items": {
                        "type": "object",
                        "required": ["id"],
                        "properties": {
                            "id": {"type": "integer"},
                            "size": {"type": "integer", "default": 1},
                            "label": {"type": "string"},
                        },
                        "x-kubernetes-validations": [
                            {"rule": "self.size <= 8", "message": "a slot holds at most 8"},
                            {"rule": "self.size >= oldSelf.size", "message": "slots only grow"},
                        ],
                    },
                },
                "options": {"type": "object", "additionalProperties": {"type": "integer"}},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                "note": {"type": "string", "nullable": True},
                "template": {
                    "type": "object",
                    "x-kubernetes-embedded-resource": True,
                    "properties": {"data": {"type": "object", "additionalProperties": {"type": "string"}}},
                },
            },
            "x-kubernetes-validations": [
                {"rule": "!has(self.name) || self.name.startsWith('a')", "message": "name must start with a"},
                {
                    "rule": "self.npus % 2 == 0",
                    "messageExpression": "'npus must be even, not ' + string(self.npus)",
                    "fieldPath": ".npus",
                },
                {
                    "rule": "self.npus == oldSelf.npus",
                    "message": "npus is immutable",
                    "reason": "FieldValueForbidden",
                },
                {"rule": "!has(self.tags) || self.tags.all(t, t.lowerAscii() == t)"},
            ],
        },
    },
}


def resource(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "example.dev/v1",
        "kind": "Thing",
        "metadata": {"name": "thing", "namespace": "default"},
        "spec": {"npus": 2, **spec},
    }


@pytest.fixture(scope="module")
def compiled() -> structural.StructuralSchema:
    return structural.StructuralSchema(SCHEMA)


def messages(causes: list[structural.Cause]) -> list[tuple[str, str, str]]:
    return [(cause.field, cause.reason, cause.message) for cause in causes]


def test_pruning_drops_undeclared_fields_and_reports_their_paths(
    compiled: structural.StructuralSchema,
) -> None:
    obj = resource(extra=1, slots=[{"id": 1, "junk": True}], free={"anything": {"goes": 1}})
    obj["metadata"]["bogus"] = "x"
    obj["spec"]["template"] = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "other": 1}
    obj["top"] = 1

    dropped = compiled.prune(obj)

    assert dropped == ["metadata.bogus", "spec.extra", "spec.slots[0].junk", "spec.template.other", "top"]
    assert obj["spec"]["free"] == {"anything": {"goes": 1}}
    assert obj["spec"]["template"] == {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}
    assert obj["metadata"] == {"name": "thing", "namespace": "default"}


def test_defaulting_fills_missing_fields_array_items_and_non_nullable_nulls(
    compiled: structural.StructuralSchema,
) -> None:
    obj = resource(slots=[{"id": 1}, {"id": 2, "size": None}], mode=None, ratio=None, note=None)

    compiled.default(obj)

    assert obj["spec"]["mode"] == "Auto"
    assert [slot["size"] for slot in obj["spec"]["slots"]] == [1, 1]
    assert "ratio" not in obj["spec"]  # a null without default on a non-nullable field is dropped
    assert obj["spec"]["note"] is None  # nullable keeps its null


def test_defaulting_does_not_create_absent_objects() -> None:
    compiled = structural.StructuralSchema(
        {
            "type": "object",
            "properties": {
                "spec": {"type": "object", "properties": {"a": {"type": "integer", "default": 1}}}
            },
        }
    )
    absent: dict[str, Any] = {}
    present: dict[str, Any] = {"spec": {}}
    compiled.default(absent)
    compiled.default(present)
    assert absent == {}
    assert present == {"spec": {"a": 1}}


INVALID_CASES = [
    pytest.param(
        {"npus": 0},
        [
            (
                "spec.npus",
                "FieldValueInvalid",
                "Invalid value: 0: spec.npus in body should be greater than or equal to 1",
            )
        ],
        id="a number below its minimum",
    ),
    pytest.param(
        {"npus": 66},
        [
            (
                "spec.npus",
                "FieldValueInvalid",
                "Invalid value: 66: spec.npus in body should be less than or equal to 64",
            )
        ],
        id="a number above its maximum",
    ),
    pytest.param(
        {"ratio": 0.5},
        [
            (
                "spec.ratio",
                "FieldValueInvalid",
                "Invalid value: 0.5: spec.ratio in body should be greater than 0.5",
            )
        ],
        id="a number on an exclusive bound",
    ),
    pytest.param(
        {"npus": "two"},
        [
            (
                "spec.npus",
                "FieldValueTypeInvalid",
                'Invalid value: "string": spec.npus in body must be of type integer: "string"',
            ),
            ("<nil>", "FieldValueInvalid", f"Invalid value: null: {structural.SKIPPED_RULES_MESSAGE}"),
        ],
        id="a wrong type skips the CEL rules with kube's notice",
    ),
    pytest.param(
        {"mode": "Foo"},
        [
            (
                "spec.mode",
                "FieldValueNotSupported",
                'Unsupported value: "Foo": supported values: "Auto", "Manual"',
            ),
            ("<nil>", "FieldValueInvalid", f"Invalid value: null: {structural.SKIPPED_RULES_MESSAGE}"),
        ],
        id="a value outside the enum",
    ),
    pytest.param(
        {"name": "abcdef1"},
        [
            ("spec.name", "FieldValueTooLong", "Too long: may not be more than 5 bytes"),
            (
                "spec.name",
                "FieldValueInvalid",
                "Invalid value: \"abcdef1\": spec.name in body should match '^[a-z]+$'",
            ),
        ],
        id="a string too long and off its pattern",
    ),
    pytest.param(
        {"name": "a"},
        [
            (
                "spec.name",
                "FieldValueInvalid",
                'Invalid value: "a": spec.name in body should be at least 2 chars long',
            )
        ],
        id="a string too short",
    ),
    pytest.param(
        {"when": "yesterday"},
        [
            (
                "spec.when",
                "FieldValueTypeInvalid",
                'Invalid value: "yesterday": spec.when in body must be of type date-time: "yesterday"',
            ),
            ("<nil>", "FieldValueInvalid", f"Invalid value: null: {structural.SKIPPED_RULES_MESSAGE}"),
        ],
        id="a string off its format",
    ),
    pytest.param(
        {"port": True},
        [
            (
                "spec.port",
                "FieldValueTypeInvalid",
                'Invalid value: "boolean": spec.port in body must be of type integer,string: "boolean"',
            ),
            ("<nil>", "FieldValueInvalid", f"Invalid value: null: {structural.SKIPPED_RULES_MESSAGE}"),
        ],
        id="int-or-string given a boolean",
    ),
    pytest.param(
        {"tags": ["a", "b", "a"]},
        [
            ("spec.tags", "FieldValueTooMany", "Too many: 3: must have at most 2 items"),
            ("spec.tags[2]", "FieldValueDuplicate", 'Duplicate value: "a"'),
        ],
        id="a set with too many items and a duplicate",
    ),
    pytest.param(
        {"slots": []},
        [
            (
                "spec.slots",
                "FieldValueInvalid",
                "Invalid value: 0: spec.slots in body should have at least 1 items",
            )
        ],
        id="an array below minItems",
    ),
    pytest.param(
        {"slots": [{"id": 1, "size": 1}, {"id": 1, "size": 2}, {"size": 2}]},
        [
            ("spec.slots[2].id", "FieldValueRequired", "Required value"),
            ("spec.slots[1]", "FieldValueDuplicate", 'Duplicate value: {"id":1}'),
        ],
        id="a map list with a duplicate key and an item without its key",
    ),
    pytest.param(
        {"options": {"a": 1, "b": "x"}},
        [
            (
                "spec.options.b",
                "FieldValueTypeInvalid",
                'Invalid value: "string": spec.options.b in body must be of type integer: "string"',
            ),
            ("<nil>", "FieldValueInvalid", f"Invalid value: null: {structural.SKIPPED_RULES_MESSAGE}"),
        ],
        id="a map value of the wrong type",
    ),
    pytest.param(
        {"note": None, "name": "bb"},
        [("spec", "FieldValueInvalid", "Invalid value: name must start with a")],
        id="a failed CEL rule on an object shows no value",
    ),
    pytest.param(
        {"npus": 3},
        [("spec.npus", "FieldValueInvalid", "Invalid value: npus must be even, not 3")],
        id="a messageExpression and fieldPath",
    ),
    pytest.param(
        {"tags": ["A"]},
        [
            (
                "spec",
                "FieldValueInvalid",
                "Invalid value: failed rule: !has(self.tags) || self.tags.all(t, t.lowerAscii() == t)",
            )
        ],
        id="a rule without message reports the rule",
    ),
    pytest.param(
        {"slots": [{"id": 1, "size": 9}]},
        [("spec.slots[0]", "FieldValueInvalid", "Invalid value: a slot holds at most 8")],
        id="a rule inside array items",
    ),
]


@pytest.mark.parametrize(("spec", "expected"), INVALID_CASES)
def test_invalid_objects_get_kube_causes(
    compiled: structural.StructuralSchema, spec: dict[str, Any], expected: list[tuple[str, str, str]]
) -> None:
    obj = resource(**spec)
    compiled.default(obj)
    assert messages(compiled.validate(obj)) == expected


def test_missing_required_field_is_required_value(compiled: structural.StructuralSchema) -> None:
    obj = resource()
    del obj["spec"]["npus"]
    assert messages(compiled.validate(obj))[0] == ("spec.npus", "FieldValueRequired", "Required value")


def test_a_valid_object_has_no_causes(compiled: structural.StructuralSchema) -> None:
    obj = resource(
        name="abc",
        ratio=1,
        when="2026-01-02T03:04:05Z",
        port="http",
        tags=["a"],
        slots=[{"id": 1}],
        note=None,
    )
    compiled.default(obj)
    assert compiled.validate(obj) == []


TRANSITION_CASES = [
    pytest.param(
        {"npus": 4},
        [("spec", "FieldValueForbidden", "Forbidden: npus is immutable")],
        id="changing an immutable field",
    ),
    pytest.param({"mode": "Manual"}, [], id="changing a mutable field"),
    pytest.param(
        {"slots": [{"id": 1, "size": 1}]},
        [("spec.slots[0]", "FieldValueInvalid", "Invalid value: slots only grow")],
        id="a map-list item correlated by key",
    ),
    pytest.param({"slots": [{"id": 2, "size": 1}]}, [], id="a new map-list item has no old self"),
]


@pytest.mark.parametrize(("change", "expected"), TRANSITION_CASES)
def test_transition_rules_compare_with_the_old_object(
    compiled: structural.StructuralSchema, change: dict[str, Any], expected: list[tuple[str, str, str]]
) -> None:
    old = resource(slots=[{"id": 1, "size": 2}])
    compiled.default(old)
    new = copy.deepcopy(old)
    new["spec"].update(change)
    compiled.default(new)
    assert messages(compiled.validate(new, old)) == expected


def test_transition_rules_do_not_run_on_create(compiled: structural.StructuralSchema) -> None:
    assert compiled.validate(resource(npus=4)) == []


def test_unchanged_nodes_ratchet_rules_without_old_self(compiled: structural.StructuralSchema) -> None:
    old = resource(name="bb")  # stored before the rule existed
    assert compiled.validate(copy.deepcopy(old), old) == []


def test_rules_that_do_not_compile_are_reported() -> None:
    broken = structural.StructuralSchema(
        {"type": "object", "x-kubernetes-validations": [{"rule": "self.a =="}]}
    )
    assert len(broken.compile_errors) == 1


def test_evaluation_errors_name_the_rule() -> None:
    compiled = structural.StructuralSchema(
        {
            "type": "object",
            "properties": {"a": {"type": "integer"}},
            "x-kubernetes-validations": [{"rule": "self.a > 0"}],
        }
    )
    (cause,) = compiled.validate({})
    assert cause.field == ""
    assert cause.message.startswith('Invalid value: "object": ')
    assert cause.message.endswith("evaluating rule: self.a > 0")


@pytest.mark.parametrize(
    ("number", "rendered"),
    [
        (1.5, "1.5"),
        (1e6, "1e+06"),
        (123456789.0, "1.23456789e+08"),
        (100000.0, "100000"),
        (1e-5, "1e-05"),
        (2.0, "2"),
    ],
)
def test_floats_render_as_go_prints_them(number: float, rendered: str) -> None:
    assert gotext.go_float(number) == rendered


@pytest.mark.parametrize(
    ("old_spec", "new_spec", "fields"),
    [
        pytest.param(
            {"npus": 2, "name": "aTOOLONGNAME"},
            {"npus": 2, "name": "aTOOLONGNAME", "mode": "Manual"},
            [],
            id="an unchanged invalid field is ratcheted",
        ),
        pytest.param(
            {"npus": 2, "name": "aTOOLONGNAME"},
            {"npus": 2, "name": "aSTILLTOOLONG"},
            ["spec.name", "spec.name"],
            id="a changed invalid field is reported",
        ),
        pytest.param(
            {"npus": 2, "port": 1},
            {"npus": 2, "port": True},
            ["spec.port", "<nil>"],
            id="true is not the same value as 1",
        ),
    ],
)
def test_updates_ratchet_errors_of_unchanged_fields(
    compiled: structural.StructuralSchema,
    old_spec: dict[str, Any],
    new_spec: dict[str, Any],
    fields: list[str],
) -> None:
    old, new = resource(), resource()
    old["spec"], new["spec"] = old_spec, new_spec
    assert [cause.field for cause in compiled.validate(new, old)] == fields


# Rules are evaluated on (and their outcomes cached by) only the fields they read.

NARROW_RULES: dict[str, Any] = {
    "type": "object",
    "properties": {
        "metadata": {"type": "object"},
        "spec": {
            "type": "object",
            "properties": {"a": {"type": "integer"}, "b": {"type": "string"}, "c": {"type": "integer"}},
            "x-kubernetes-validations": [
                {"rule": "self.a > 0", "messageExpression": "'a must be positive for ' + self.b"},
                {"rule": "!has(self.c) || self.c < self.a", "message": "c must be below a"},
            ],
        },
        "status": {"type": "object", "properties": {"n": {"type": "integer"}}},
    },
    "x-kubernetes-validations": [{"rule": "size(self.metadata.name) <= 5", "message": "name too long"}],
}


def narrow(name: str, spec: dict[str, Any], status: int = 0) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": {"x": str(status)}}, "spec": spec, "status": {"n": status}}


def test_a_rule_on_the_name_judges_each_name_whatever_else_changes() -> None:
    compiled = structural.StructuralSchema(NARROW_RULES)
    assert messages(compiled.validate(narrow("short", {"a": 1, "b": "x"}, status=1))) == []
    too_long = narrow("much-too-long", {"a": 1, "b": "x"}, status=1)
    assert messages(compiled.validate(too_long)) == [
        ("", "FieldValueInvalid", "Invalid value: name too long")
    ]
    old = narrow("short", {"a": 1, "b": "x"}, status=1)
    assert messages(compiled.validate(narrow("short", {"a": 1, "b": "x"}, status=2), old)) == []


def test_a_message_expression_sees_the_fields_it_reads_beside_the_rule_s() -> None:
    compiled = structural.StructuralSchema(NARROW_RULES)
    assert messages(compiled.validate(narrow("p", {"a": 0, "b": "tenant-1"}))) == [
        ("spec", "FieldValueInvalid", "Invalid value: a must be positive for tenant-1")
    ]
    assert messages(compiled.validate(narrow("p", {"a": 0, "b": "tenant-2"}))) == [
        ("spec", "FieldValueInvalid", "Invalid value: a must be positive for tenant-2")
    ]


def test_has_sees_whether_a_read_field_is_there() -> None:
    compiled = structural.StructuralSchema(NARROW_RULES)
    assert messages(compiled.validate(narrow("p", {"a": 2, "b": "x"}))) == []
    assert messages(compiled.validate(narrow("p", {"a": 2, "b": "x", "c": 5}))) == [
        ("spec", "FieldValueInvalid", "Invalid value: c must be below a")
    ]


@pytest.mark.parametrize(
    ("rule", "self_reads"),
    [
        ("size(self.metadata.name) <= 63", frozenset({"metadata"})),
        ("!has(self.blockSize) || self.blockSize <= self.npus", frozenset({"blockSize", "npus"})),
        ("self == oldSelf", None),
        ("self['a'] == 1", None),
        ("self.all(k, k != 'x')", None),
        ("[1].all(self, self > 0)", None),
        ("1 == 1", frozenset()),
    ],
)
def test_the_fields_a_rule_reads(rule: str, self_reads: frozenset[str] | None) -> None:
    assert cel.compile_expression(rule).reads["self"] == self_reads
