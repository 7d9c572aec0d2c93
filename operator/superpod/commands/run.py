"""`superpod run`: the operator (kopf), cluster-wide unless --namespace is given."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from superpod.controller import settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    settings.add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    try:
        config = settings.from_sources(args)
    except ValueError as error:
        print(f"superpod run: {error}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.DEBUG if config.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from superpod.controller import operator

    asyncio.run(operator.run(config))
    return 0
