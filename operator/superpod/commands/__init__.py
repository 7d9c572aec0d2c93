"""Subcommands of the `superpod` CLI, one module each.

Every module exposes `add_arguments(parser)` and `run(args) -> int`; `superpod.cli` lists them.
"""
