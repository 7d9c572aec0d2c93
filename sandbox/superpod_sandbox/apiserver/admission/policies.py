"""Admission policies (ValidatingAdmissionPolicy, MutatingAdmissionPolicy and their bindings), evaluated as
kube-apiserver evaluates them.

Each binding whose policy exists selects requests by the policy's `matchConstraints` and its own
`matchResources` (resourceRules with operations, groups, versions, resources and subresources such as
`superpodpartitions/status`, resourceNames, excludeResourceRules, namespaceSelector, objectSelector); the
policy's `matchConditions` must all hold. The policy's `validations` then run as CEL (the same compiler as CRD
rules, `schema/cel.py`) over `object`, `oldObject` (null on CREATE, `object` null on DELETE), `request` (the
AdmissionRequest, with `userInfo` from the identity the request authenticated as), `params` (the object a
binding's `paramRef` names, per `paramKind`; each of several selected params is checked), `namespaceObject`
and `variables` (the policy's `variables`, in order).

A validation that is false denies the request when the binding's `validationActions` hold `Deny`, with kube's
status: 422 Invalid (or the validation's `reason`) and the message
`<resource> "<name>" is forbidden: ValidatingAdmissionPolicy '<policy>' with binding '<binding>' denied request:
<message>`, where the message is the `messageExpression`'s value, else `message`, else
`failed expression: <expression>`. An expression that fails to compile or evaluate, a missing param (with
`parameterNotFoundAction: Deny`) or a missing `paramKind` resource denies under `failurePolicy: Fail` (the
default) and is skipped under `Ignore`.

A MutatingAdmissionPolicy (admissionregistration.k8s.io/v1, Kubernetes 1.36; kube's plugin runs before the
mutating webhooks) is selected the same way by its bindings, and its `mutations` run in order, each over the
object as the ones before left it: a `JSONPatch` mutation's expression gives a list of
`JSONPatch{op: ..., path: ..., value: ...}` applied as RFC 6902. An expression that fails, a patch that does not
apply or a result that is not such a list refuses the request under `failurePolicy: Fail` (the default) with
`<resource> "<name>" is forbidden: MutatingAdmissionPolicy '<policy>' with binding '<binding>' denied request:
<message>` and is skipped under `Ignore`.

Known differences: expressions are not type-checked when the policy is written (an error shows when it runs),
there is no cost budget and no `authorizer` variable; `Warn` and `Audit` actions do not deny and produce no
warning header or audit annotation; `auditAnnotations` are not evaluated. `ApplyConfiguration` mutations (a
server-side-apply merge) are not supported: such a mutation counts as a failure (its message says so), and
`reinvocationPolicy` is ignored (each policy runs once).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from superpod_sandbox.apiserver import errors
from superpod_sandbox.apiserver.admission import dispatcher
from superpod_sandbox.apiserver.admission.dispatcher import AdmissionRequestInfo
from superpod_sandbox.apiserver.patches import jsonpatch
from superpod_sandbox.apiserver.schema import cel

Object = dict[str, Any]
POLICIES = ("admissionregistration.k8s.io", "validatingadmissionpolicies")
BINDINGS = ("admissionregistration.k8s.io", "validatingadmissionpolicybindings")
MUTATING_POLICIES = ("admissionregistration.k8s.io", "mutatingadmissionpolicies")
MUTATING_BINDINGS = ("admissionregistration.k8s.io", "mutatingadmissionpolicybindings")
MESSAGES = frozenset({"JSONPatch", "Object"})  # the types a mutation's expression constructs
VARIABLES = frozenset({"object", "oldObject", "request", "params", "namespaceObject", "variables"})
REASON_CODES = {"Unauthorized": 401, "Forbidden": 403, "Invalid": 422, "RequestEntityTooLarge": 413}

# (group, kind) -> (storage key, namespaced) of the kind a policy's paramKind names, or None
ParamResolver = Callable[[str, str], tuple[tuple[str, str], bool] | None]
# (storage key, namespace or None for all) -> objects
Lister = Callable[[tuple[str, str], str | None], list[Object]]


class _Failure(Exception):
    """The policy could not be evaluated (compile or evaluation error, missing param): failurePolicy decides."""


@dataclasses.dataclass(frozen=True)
class Denial:
    policy: str
    binding: str
    message: str
    reason: str


@functools.lru_cache(maxsize=512)
def _program(expression: str) -> cel.Program:
    return cel.compile_expression(expression, VARIABLES, MESSAGES)


@dataclasses.dataclass(frozen=True)
class _Json:
    """A variable's JSON value, converted to CEL as far as each expression reads it: a policy's expressions
    mostly read `object.metadata` of objects whose whole conversion costs far more than their evaluation."""

    value: Any


def _bind(program: cel.Program, variables: Mapping[str, Any]) -> dict[str, Any]:
    bound: dict[str, Any] = {}
    for name, value in variables.items():
        if isinstance(value, _Json):
            fields = program.reads.get(name)
            if fields is not None and not fields:
                continue  # not read at all
            if fields and isinstance(value.value, dict):
                value = cel.to_cel({k: value.value[k] for k in fields if k in value.value}, None)
            else:
                value = cel.to_cel(value.value, None)
        bound[name] = value
    return bound


def _evaluate(expression: str, variables: Mapping[str, Any]) -> Any:
    try:
        program = _program(expression)
        return program.evaluate(_bind(program, variables))
    except cel.RuleCompileError as error:
        raise _Failure(f"compilation failed: {error}") from None
    except Exception as error:  # cel-python raises its own errors and Python ones (KeyError, TypeError)
        raise _Failure(f"expression '{expression}' resulted in error: {_error_text(error)}") from None


def _error_text(error: BaseException) -> str:
    if error.args and isinstance(error.args[0], str):
        return error.args[0]
    return str(error) or type(error).__name__


def _selects(constraints: Mapping[str, Any] | None, request: AdmissionRequestInfo) -> bool:
    """matchConstraints / matchResources: rules (with resourceNames), exclusions, namespace and object selectors."""
    if not constraints:
        return True
    rules = constraints.get("resourceRules")
    if rules is not None and not any(_rule_selects(rule, request) for rule in rules):
        return False
    if any(_rule_selects(rule, request) for rule in constraints.get("excludeResourceRules") or []):
        return False
    return dispatcher.namespace_matches(
        constraints.get("namespaceSelector"), request
    ) and dispatcher.object_matches(constraints.get("objectSelector"), request)


def _rule_selects(rule: Mapping[str, Any], request: AdmissionRequestInfo) -> bool:
    names = rule.get("resourceNames") or []
    return dispatcher.rule_matches(rule, request) and (not names or request.name in names)


class Policies:
    """The stored policies and bindings, applied to one request at a time."""

    def __init__(self, lister: Lister, params: ParamResolver) -> None:
        self._list = lister
        self._param_resource = params

    def bindings(self, mutating: bool = False) -> Iterator[tuple[Object, Object]]:
        """(policy, binding) pairs, in binding name order."""
        bindings = self._list(MUTATING_BINDINGS if mutating else BINDINGS, None)
        if not bindings:
            return
        stored = self._list(MUTATING_POLICIES if mutating else POLICIES, None)
        policies = {policy["metadata"]["name"]: policy for policy in stored}
        for binding in sorted(bindings, key=lambda b: b["metadata"]["name"]):
            policy = policies.get((binding.get("spec") or {}).get("policyName", ""))
            if policy is not None:
                yield policy, binding

    def validate(self, request: AdmissionRequestInfo, namespace_object: Object | None) -> None:
        """Raise the ApiError kube answers when a binding with `Deny` denies `request`."""
        for policy, binding in self.bindings():
            denial = self._decide(policy, binding, request, namespace_object)
            if denial is not None:
                raise errors.ApiError(_status(denial, request))

    def mutate(self, request: AdmissionRequestInfo, namespace_object: Object | None) -> Object | None:
        """The object as the MutatingAdmissionPolicies leave it (None when none changed it); raise the ApiError
        kube answers when one fails under `failurePolicy: Fail`."""
        obj = request.object
        for policy, binding in self.bindings(mutating=True):
            current = dataclasses.replace(request, object=obj)
            try:
                mutated = self._mutations(policy, binding, current, namespace_object)
            except _Failure as failure:
                if (policy.get("spec") or {}).get("failurePolicy", "Fail") == "Ignore":
                    continue
                denial = Denial(
                    policy["metadata"]["name"], binding["metadata"]["name"], str(failure), "Forbidden"
                )
                raise errors.ApiError(_status(denial, request, kind="MutatingAdmissionPolicy")) from None
            if mutated is not None:
                obj = mutated
        return None if obj is request.object else obj

    def _mutations(
        self, policy: Object, binding: Object, request: AdmissionRequestInfo, namespace_object: Object | None
    ) -> Object | None:
        """The object after one policy's mutations, or None when the policy does not apply."""
        spec, binding_spec = policy.get("spec") or {}, binding.get("spec") or {}
        base = _base(request, namespace_object)
        if not _applies(spec, binding_spec, request, base):
            return None
        obj = request.object
        for params in self._params(spec, binding_spec, request):
            for mutation in spec.get("mutations") or []:
                variables = {**base, "object": _Json(obj), "params": _Json(params)}
                variables["variables"] = self._variables(spec, variables)
                obj = _apply_mutation(mutation, obj, variables)
        return obj

    def _decide(
        self, policy: Object, binding: Object, request: AdmissionRequestInfo, namespace_object: Object | None
    ) -> Denial | None:
        spec, binding_spec = policy.get("spec") or {}, binding.get("spec") or {}
        actions = binding_spec.get("validationActions") or []
        policy_name, binding_name = policy["metadata"]["name"], binding["metadata"]["name"]
        base = _base(request, namespace_object)
        try:
            if not _applies(spec, binding_spec, request, base):
                return None
            for params in self._params(spec, binding_spec, request):
                variables = {**base, "params": _Json(params)}
                variables["variables"] = self._variables(spec, variables)
                message = self._first_failure(spec, variables)
                if message is not None and "Deny" in actions:
                    return Denial(policy_name, binding_name, message[0], message[1])
        except _Failure as failure:
            if spec.get("failurePolicy", "Fail") == "Ignore" or "Deny" not in actions:
                return None
            return Denial(policy_name, binding_name, str(failure), "Invalid")
        return None

    def _variables(self, spec: Mapping[str, Any], variables: Mapping[str, Any]) -> Any:
        values: dict[str, Any] = {}
        for variable in spec.get("variables") or []:
            scope = {**variables, "variables": _cel_map(values)}
            values[variable["name"]] = _evaluate(variable["expression"], scope)
        return _cel_map(values)

    def _first_failure(self, spec: Mapping[str, Any], variables: Mapping[str, Any]) -> tuple[str, str] | None:
        """(message, reason) of the first validation that does not hold, or None."""
        for validation in spec.get("validations") or []:
            expression = validation["expression"]
            if bool(_evaluate(expression, variables)):
                continue
            message = ""
            if validation.get("messageExpression"):
                try:
                    value = _evaluate(validation["messageExpression"], variables)
                    message = value if isinstance(value, str) else ""
                except _Failure:
                    message = ""
            message = message.strip() or validation.get("message") or f"failed expression: {expression}"
            return message, validation.get("reason") or "Invalid"
        return None

    def _params(
        self, spec: Mapping[str, Any], binding_spec: Mapping[str, Any], request: AdmissionRequestInfo
    ) -> list[Object | None]:
        kind = spec.get("paramKind")
        if not kind:
            return [None]
        group = str(kind.get("apiVersion", "")).rpartition("/")[0]
        found = self._param_resource(group, str(kind.get("kind", "")))
        if found is None:
            raise _Failure(
                f"failed to configure policy: paramKind {kind.get('apiVersion')}, Kind={kind.get('kind')} is not served"
            )
        key, namespaced = found
        ref = binding_spec.get("paramRef")
        if not ref:
            raise _Failure(
                "failed to configure binding: paramRef is required when the policy has a paramKind"
            )
        namespace = ""
        if namespaced:
            namespace = ref.get("namespace") or request.namespace
            if not namespace:
                raise _Failure(
                    "failed to configure binding: cannot use a namespaced paramRef for a cluster-scoped request without paramRef.namespace"
                )
        candidates = self._list(key, namespace if namespaced else None)
        if ref.get("name"):
            selected = [o for o in candidates if o["metadata"]["name"] == ref["name"]]
        else:
            selected = [
                o for o in candidates
                if dispatcher.selector_matches(ref.get("selector") or {}, o["metadata"].get("labels") or {})
            ]  # fmt: skip
        if selected:
            return list(selected)
        if ref.get("parameterNotFoundAction", "Deny") == "Allow":
            return []
        raise _Failure(
            "failed to configure binding: no params found for policy binding with `Deny` parameterNotFoundAction"
        )


def _base(request: AdmissionRequestInfo, namespace_object: Object | None) -> dict[str, Any]:
    """The variables every expression of a policy sees (`params` and `variables` come per param)."""
    return {
        "object": _Json(request.object),
        "oldObject": _Json(request.old_object),
        "request": _Json(dispatcher.review_request(request)),
        "namespaceObject": _Json(namespace_object),
    }


def _applies(
    spec: Mapping[str, Any],
    binding_spec: Mapping[str, Any],
    request: AdmissionRequestInfo,
    base: Mapping[str, Any],
) -> bool:
    """The policy's matchConstraints, the binding's matchResources and the policy's matchConditions all select
    the request (a condition that cannot be evaluated raises `_Failure`: the failurePolicy decides)."""
    if not _selects(spec.get("matchConstraints"), request) or not _selects(
        binding_spec.get("matchResources"), request
    ):
        return False
    conditions = {**base, "params": None}
    return all(bool(_evaluate(c["expression"], conditions)) for c in spec.get("matchConditions") or [])


def _apply_mutation(mutation: Mapping[str, Any], obj: Object | None, variables: Mapping[str, Any]) -> Object:
    """One mutation of a MutatingAdmissionPolicy applied to `obj` (a copy comes back)."""
    kind = mutation.get("patchType")
    if kind != "JSONPatch":
        raise _Failure(f"patchType {kind} is not supported by the sandbox (only JSONPatch)")
    expression = (mutation.get("jsonPatch") or {}).get("expression", "")
    operations = cel.to_json(_evaluate(expression, variables))
    if not isinstance(operations, list) or not all(isinstance(op, dict) for op in operations):
        raise _Failure(f"expression '{expression}' must evaluate to a list of JSONPatch")
    try:
        patched: Object = jsonpatch.json_patch(obj, operations)
    except errors.ApiError as error:
        raise _Failure(f"JSON Patch: {error.status.get('message', error)}") from None
    return patched


def _cel_map(values: Mapping[str, Any]) -> Any:
    from celpy import celtypes

    return celtypes.MapType({celtypes.StringType(k): v for k, v in values.items()})


def _status(denial: Denial, request: AdmissionRequestInfo, kind: str = "ValidatingAdmissionPolicy") -> Object:
    """admission.NewForbidden with the policy's reason and code (422 Invalid unless the validation says)."""
    message = f"{kind} '{denial.policy}' with binding '{denial.binding}' denied request: {denial.message}"
    qualified = errors.qualified(request.group, request.resource)
    prefix = f'{qualified} "{request.name}"' if request.name else qualified
    details: Object = {"name": request.name} if request.name else {}
    if request.group:
        details["group"] = request.group
    details["kind"] = request.resource
    details["causes"] = [{"message": message}]
    code = REASON_CODES.get(denial.reason, 422)
    return errors.status(code, denial.reason, f"{prefix} is forbidden: {message}", details)
