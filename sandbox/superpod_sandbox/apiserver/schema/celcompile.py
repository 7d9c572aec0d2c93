"""CEL parse trees compiled to Python closures, with cel-python's interpreter semantics but ~10x its speed.

cel-python's InterpretedRunner walks the lark tree on every evaluation (a new Evaluator and Activation each
time, typing lookups in every node, a sub-evaluator per list element in macros): 2-8 ms for a typical CRD rule.
This module walks the tree once, at compile time, and returns nested closures that call the very same operator
and library functions (`celpy.evaluation.base_functions` plus the caller's library) and convert the same Python
exceptions into the same `CELEvalError` values, node type by node type, as `celpy.evaluation.Evaluator` does:
errors are values that flow through operators (`||` and `&&` absorb them commutatively), a failing `map`/
`filter`/`exists_one` body raises, an `all`/`exists` body's error is folded by `&&`/`||`.

Input: the tree from `celpy.Environment().compile(source)`, the function table, and the names of the variables
the caller will bind (`self`, `oldSelf`, ...). `compile_tree` raises `Unsupported` for what it does not cover
(message construction of types other than `messages`, `reduce`, leading-dot names, identifiers that are
neither bound variables nor macro variables): the caller then keeps the interpreter for that expression.
Message construction (`JSONPatch{op: "add", ...}`, `Object{metadata: Object.metadata{...}}`, as
MutatingAdmissionPolicy mutations write them) builds a map of the fields set, for types whose first name is in
`messages`. A differential test compares both on every rule of the CRDs and many more.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

import lark
from celpy import celtypes, evaluation

Env = Mapping[str, Any]  # bound variable name -> CEL value
Tree = lark.Tree[Any]
Node = Callable[[Env], Any]
CELEvalError = evaluation.CELEvalError

_RELATIONS = {
    "relation_lt": "_<_",
    "relation_le": "_<=_",
    "relation_ge": "_>=_",
    "relation_gt": "_>_",
    "relation_eq": "_==_",
    "relation_ne": "_!=_",
    "relation_in": "_in_",
}
_ADDITIONS = {"addition_add": "_+_", "addition_sub": "_-_"}
_MULTIPLICATIONS = {"multiplication_mul": "_*_", "multiplication_div": "_/_", "multiplication_mod": "_%_"}
_UNARIES = {"unary_not": "!_", "unary_neg": "-_"}
_MACROS = {"map", "filter", "all", "exists", "exists_one", "reduce", "min"}


class Unsupported(Exception):
    """The expression uses something this compiler leaves to the interpreter."""


def compile_tree(
    tree: Tree,
    functions: Mapping[str, Callable[..., Any]],
    variables: frozenset[str],
    messages: frozenset[str] = frozenset(),
) -> Node:
    """A closure evaluating `tree`; it returns the CEL value, or raises CELEvalError as the interpreter does.
    `messages`: the type names (first part) whose construction builds a map of its fields."""
    table = {**evaluation.base_functions, **functions}
    node = _Compiler(table, messages).compile(tree, variables)

    def run(env: Env) -> Any:
        value = node(env)
        if isinstance(value, CELEvalError):
            raise value
        return value

    return run


def _type_name(tree: Tree) -> str:
    """The dotted name of a message type (`JSONPatch`, `Object.spec.template`) from its member tree."""
    node: Any = tree
    while node.data == "member":
        (node,) = node.children
    if node.data == "member_dot":
        inner, name = node.children
        return f"{_type_name(inner)}.{name}"
    if node.data == "primary" and node.children[0].data == "ident":
        return str(node.children[0].children[0])
    raise Unsupported("message type")


def _error(message: str, error: BaseException) -> CELEvalError:
    value = CELEvalError(message, error.__class__, error.args)
    value.__cause__ = error
    return value


class _Compiler:
    def __init__(self, functions: Mapping[str, Callable[..., Any]], messages: frozenset[str]) -> None:
        self.functions = functions
        self.messages = messages

    def compile(self, tree: Tree, scope: frozenset[str]) -> Node:
        method = getattr(self, f"_{tree.data}", None)
        if method is None:
            raise Unsupported(str(tree.data))
        node: Node = method(tree, scope)
        return node

    def _only_child(self, tree: Tree, scope: frozenset[str]) -> Node:
        (child,) = tree.children
        if not isinstance(child, lark.Tree):
            raise Unsupported(f"{tree.data} over a token")
        return self.compile(child, scope)

    # expr, ||, && -------------------------------------------------------------------------------

    def _expr(self, tree: Tree, scope: frozenset[str]) -> Node:
        if len(tree.children) == 1:
            return self._only_child(tree, scope)
        condition, if_true, if_false = (self.compile(child, scope) for child in tree.children)
        choose = self.functions["_?_:_"]

        def ternary(env: Env) -> Any:
            value = condition(env)
            left: Any = celtypes.BoolType(False)
            right: Any = celtypes.BoolType(False)
            try:
                if value:
                    left = if_true(env)
                else:
                    right = if_false(env)
                return choose(value, left, right)
            except TypeError as error:
                return _error("found no matching overload for _?_:_", error)

        return ternary

    def _logical(self, tree: Tree, scope: frozenset[str], name: str, absorbing: bool) -> Node:
        if len(tree.children) == 1:
            return self._only_child(tree, scope)
        left, right = (self.compile(child, scope) for child in tree.children)
        combine = self.functions[name]

        def logical(env: Env) -> Any:
            x = left(env)
            if isinstance(x, celtypes.BoolType) and bool(x) is absorbing:
                return x  # true || anything, false && anything: the right side cannot change the result
            y = right(env)
            try:
                return combine(x, y)
            except TypeError as error:
                return _error(f"found no matching overload for {name}", error)

        return logical

    def _conditionalor(self, tree: Tree, scope: frozenset[str]) -> Node:
        return self._logical(tree, scope, "_||_", True)

    def _conditionaland(self, tree: Tree, scope: frozenset[str]) -> Node:
        return self._logical(tree, scope, "_&&_", False)

    # binary and unary operators ------------------------------------------------------------------

    def _binary(
        self,
        tree: Tree,
        scope: frozenset[str],
        names: Mapping[str, str],
        catches: tuple[tuple[type[BaseException], ...], ...],
        messages: tuple[str, ...],
    ) -> Node:
        if len(tree.children) == 1:
            return self._only_child(tree, scope)
        operator_tree, right_tree = tree.children
        assert isinstance(operator_tree, lark.Tree) and isinstance(right_tree, lark.Tree)
        (left_tree,) = operator_tree.children
        assert isinstance(left_tree, lark.Tree)
        name = names[str(operator_tree.data)]
        left, right = self.compile(left_tree, scope), self.compile(right_tree, scope)
        apply = self.functions[name]

        def binary(env: Env) -> Any:
            x, y = left(env), right(env)
            try:
                return apply(x, y)
            except catches[0] as error:
                return _error(f"found no matching overload for {name}", error)
            except catches[1] as error:
                return _error(messages[0], error)
            except catches[2] as error:
                return _error(messages[1], error)

        return binary

    def _relation(self, tree: Tree, scope: frozenset[str]) -> Node:
        return self._binary(tree, scope, _RELATIONS, ((TypeError,), (), ()), ("", ""))

    def _addition(self, tree: Tree, scope: frozenset[str]) -> Node:
        return self._binary(
            tree,
            scope,
            _ADDITIONS,
            ((TypeError,), (ValueError, OverflowError), ()),
            ("return error for overflow", ""),
        )

    def _multiplication(self, tree: Tree, scope: frozenset[str]) -> Node:
        return self._binary(
            tree,
            scope,
            _MULTIPLICATIONS,
            ((TypeError,), (ZeroDivisionError,), (ValueError, OverflowError)),
            ("modulus or divide by zero", "return error for overflow"),
        )

    def _unary(self, tree: Tree, scope: frozenset[str]) -> Node:
        if len(tree.children) == 1:
            return self._only_child(tree, scope)
        operator_tree, operand_tree = tree.children
        assert isinstance(operator_tree, lark.Tree) and isinstance(operand_tree, lark.Tree)
        name = _UNARIES[str(operator_tree.data)]
        operand = self.compile(operand_tree, scope)
        apply = self.functions[name]

        def unary(env: Env) -> Any:
            value = operand(env)
            try:
                return apply(value)
            except TypeError as error:
                return _error(f"found no matching overload for {name}", error)
            except ValueError as error:
                return _error("return error for overflow", error)

        return unary

    # members -------------------------------------------------------------------------------------

    def _member(self, tree: Tree, scope: frozenset[str]) -> Node:
        return self._only_child(tree, scope)

    def _member_object(self, tree: Tree, scope: frozenset[str]) -> Node:
        if len(tree.children) == 1:
            (child,) = tree.children
            if not isinstance(child, lark.Tree) or child.data != "primary":
                raise Unsupported("message construction")
            return self.compile(child, scope)
        type_tree, fields_tree = tree.children
        assert isinstance(type_tree, lark.Tree) and isinstance(fields_tree, lark.Tree)
        if _type_name(type_tree).split(".")[0] not in self.messages:
            raise Unsupported("message construction")
        names = [celtypes.StringType(str(token)) for token in fields_tree.children[::2]]
        values = [self.compile(child, scope) for child in fields_tree.children[1::2]]

        def message(env: Env) -> Any:
            fields = celtypes.MapType()
            for name, value in zip(names, values, strict=True):
                item = value(env)
                if isinstance(item, CELEvalError):
                    return item
                fields[name] = item
            return fields

        return message

    def _member_dot(self, tree: Tree, scope: frozenset[str]) -> Node:
        member_tree, name_token = tree.children
        assert isinstance(member_tree, lark.Tree)
        member = self.compile(member_tree, scope)
        name = str(name_token)

        def member_dot(env: Env) -> Any:
            value = member(env)
            if isinstance(value, CELEvalError):
                return value
            if isinstance(value, celtypes.MessageType):
                return value.get(name)
            if isinstance(value, celtypes.MapType):
                try:
                    return value[name]
                except KeyError:
                    return CELEvalError(f"no such member in mapping: {name!r}", KeyError, None)
            return CELEvalError(
                f"{value!r} with type: '{type(value)}' does not support field selection", TypeError, None
            )

        return member_dot

    def _member_index(self, tree: Tree, scope: frozenset[str]) -> Node:
        member_tree, index_tree = tree.children
        assert isinstance(member_tree, lark.Tree) and isinstance(index_tree, lark.Tree)
        member, index = self.compile(member_tree, scope), self.compile(index_tree, scope)
        get = self.functions["_[_]"]

        def member_index(env: Env) -> Any:
            container, key = member(env), index(env)
            try:
                return get(container, key)
            except TypeError as error:
                return _error("found no matching overload for _[_]", error)
            except KeyError as error:
                return _error("no such key", error)
            except IndexError as error:
                return _error("invalid_argument", error)

        return member_index

    def _member_dot_arg(self, tree: Tree, scope: frozenset[str]) -> Node:
        member_tree, name_token = tree.children[:2]
        assert isinstance(member_tree, lark.Tree)
        name = str(name_token)
        if name in _MACROS:
            return self._macro(tree, scope, name)
        member = self.compile(member_tree, scope)
        arguments = self._exprlist(tree.children[2], scope) if len(tree.children) == 3 else None
        function = self.functions.get(name)

        def method(env: Env) -> Any:
            target = member(env)
            args = arguments(env) if arguments is not None else celtypes.ListType()
            if function is None:
                return CELEvalError(f"undeclared reference to {name!r}", KeyError, (name,))
            if isinstance(target, CELEvalError):
                return target
            if isinstance(args, CELEvalError):
                return args
            try:
                return function(target, *args)
            except ValueError as error:
                return _error("return error for overflow", error)
            except (TypeError, AttributeError) as error:
                return _error("no such overload", error)

        return method

    def _macro(self, tree: Tree, scope: frozenset[str], name: str) -> Node:
        member_tree = tree.children[0]
        assert isinstance(member_tree, lark.Tree)
        member = self.compile(member_tree, scope)
        if name == "min":
            if len(tree.children) == 3:
                raise Unsupported("min with arguments")

            def minimum(env: Env) -> Any:
                values = member(env)
                if isinstance(values, CELEvalError):
                    return values
                try:
                    return min(values)
                except ValueError as error:
                    return _error(
                        "Attempt to reduce an empty sequence or a sequence with a None value", error
                    )

            return minimum
        if name == "reduce" or len(tree.children) != 3:
            raise Unsupported(f"macro {name}")
        arguments = tree.children[2]
        assert isinstance(arguments, lark.Tree)
        if len(arguments.children) != 2:
            raise Unsupported(f"macro {name} with {len(arguments.children)} arguments")
        variable_tree, body_tree = arguments.children
        assert isinstance(variable_tree, lark.Tree) and isinstance(body_tree, lark.Tree)
        idents = list(variable_tree.find_data("ident"))
        if len(idents) != 1:
            raise Unsupported("macro variable")
        variable = str(idents[0].children[0])
        body = self.compile(body_tree, scope | {variable})

        def raising(env: Env, item: Any) -> Any:  # build_macro_eval: a failing body raises
            value = body({**env, variable: item})
            if isinstance(value, CELEvalError):
                raise value
            return value

        def swallowing(env: Env, item: Any) -> Any:  # build_ss_macro_eval: the error becomes the value
            return body({**env, variable: item})

        if name == "map":
            return self._over(member, lambda env, items: celtypes.ListType([raising(env, i) for i in items]))
        if name == "filter":
            return self._over(
                member, lambda env, items: celtypes.ListType([i for i in items if raising(env, i)])
            )
        if name == "exists_one":
            return self._over(
                member,
                lambda env, items: celtypes.BoolType(sum(1 for i in items if bool(raising(env, i))) == 1),
            )
        fold: Callable[[Any, Any], Any] = evaluation.eval_error("no such overload", TypeError)(
            celtypes.logical_and if name == "all" else celtypes.logical_or
        )
        start = celtypes.BoolType(name == "all")
        return self._over(
            member, lambda env, items: functools.reduce(fold, (swallowing(env, i) for i in items), start)
        )

    @staticmethod
    def _over(member: Node, apply: Callable[[Env, Any], Any]) -> Node:
        def macro(env: Env) -> Any:
            items = member(env)
            if isinstance(items, CELEvalError):
                return items
            return apply(env, items)

        return macro

    # primaries -----------------------------------------------------------------------------------

    def _primary(self, tree: Tree, scope: frozenset[str]) -> Node:
        (child,) = tree.children
        assert isinstance(child, lark.Tree)
        kind = str(child.data)
        if kind == "literal":
            return self._literal(child)
        if kind == "paren_expr":
            return self._only_child(child, scope)
        if kind == "list_lit":
            if not child.children:
                return lambda env: celtypes.ListType()
            return self._exprlist(child.children[0], scope)
        if kind == "map_lit":
            return self._map_lit(child, scope)
        if kind == "ident":
            return self._ident(child, scope)
        if kind == "ident_arg":
            return self._call(child, scope)
        raise Unsupported(kind)  # leading-dot names

    def _map_lit(self, tree: Tree, scope: frozenset[str]) -> Node:
        """{k: v, ...}: the first error among keys and values, else the map (a repeated key is an error)."""
        pairs = tree.children[0].children if tree.children else []
        keys = [self.compile(child, scope) for child in pairs[::2]]
        values = [self.compile(child, scope) for child in pairs[1::2]]

        def map_lit(env: Env) -> Any:
            result = celtypes.MapType()
            for key_node, value_node in zip(keys, values, strict=True):
                key, value = key_node(env), value_node(env)
                for item in (key, value):
                    if isinstance(item, CELEvalError):
                        return item
                if key in result:
                    return CELEvalError(f"Failed with repeated key: {key!r}", ValueError, (key,))
                result[key] = value
            return result

        return map_lit

    def _literal(self, tree: Tree) -> Node:
        (token,) = tree.children
        assert isinstance(token, lark.Token)
        value: Any
        try:
            if token.type == "FLOAT_LIT":
                value = celtypes.DoubleType(token.value)
            elif token.type == "INT_LIT":
                value = celtypes.IntType(token.value)
            elif token.type == "UINT_LIT":
                value = celtypes.UintType(token.value[:-1])
            elif token.type in ("MLSTRING_LIT", "STRING_LIT"):
                value = evaluation.celstr(token)
            elif token.type == "BYTES_LIT":
                value = evaluation.celbytes(token)
            elif token.type == "BOOL_LIT":
                value = celtypes.BoolType(token.value.lower() == "true")
            elif token.type == "NULL_LIT":
                value = None
            else:
                raise Unsupported(f"literal {token.type}")
        except ValueError as error:
            value = CELEvalError(error.args[0], error.__class__, error.args)
        return lambda env: value

    def _ident(self, tree: Tree, scope: frozenset[str]) -> Node:
        name = str(tree.children[0])
        if name not in scope:
            raise Unsupported(f"identifier {name}")  # types and packages resolve in the interpreter

        def ident(env: Env) -> Any:
            try:
                return env[name]
            except KeyError as error:
                return _error(f"undeclared reference to '{name}'", error)

        return ident

    def _call(self, tree: Tree, scope: frozenset[str]) -> Node:
        name = str(tree.children[0])
        argument_trees = tree.children[1].children if len(tree.children) == 2 else []
        arguments = [self.compile(child, scope) for child in argument_trees]
        if name == "has":
            (argument,) = arguments
            return lambda env: celtypes.BoolType(not isinstance(argument(env), CELEvalError))
        if name == "dyn":
            (argument,) = arguments
            return argument
        function = self.functions.get(name)

        def call(env: Env) -> Any:
            if function is None:
                return CELEvalError(f"undeclared reference to '{name}'", KeyError, (name,))
            values = [argument(env) for argument in arguments]
            for value in values:
                if isinstance(value, CELEvalError):
                    return value
            try:
                return function(*values)
            except ValueError as error:
                return _error("return error for overflow", error)
            except (TypeError, AttributeError) as error:
                return _error("no such overload", error)

        return call

    def _exprlist(self, tree: Any, scope: frozenset[str]) -> Node:
        """exprlist(): the first error among the values, else the list of them."""
        assert isinstance(tree, lark.Tree)
        items = [self.compile(child, scope) for child in tree.children]

        def exprlist(env: Env) -> Any:
            values = [item(env) for item in items]
            for value in values:
                if isinstance(value, CELEvalError):
                    return value
            return celtypes.ListType(values)

        return exprlist
