"""`superpod sandbox`: serve the in-memory Kubernetes API server until interrupted, with a kubeconfig for it."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    parser.add_argument(
        "--kubeconfig",
        type=Path,
        default=Path("sandbox.kubeconfig"),
        help="kubeconfig to write (default: sandbox.kubeconfig)",
    )
    parser.add_argument(
        "--tls", action="store_true", help="serve HTTPS with a generated self-signed certificate"
    )
    parser.add_argument(
        "--strict-authentication",
        action="store_true",
        help="refuse unknown credentials (401) and treat requests without any as system:anonymous, as kube "
        "does (default: both are the admin, for tools that predate identities)",
    )
    parser.add_argument(
        "--user",
        action="append",
        default=[],
        metavar="NAME[:GROUP,...]",
        help="write a kubeconfig for this user next to --kubeconfig (<kubeconfig>-<name>; a client certificate "
        "with --tls, a token otherwise); repeatable",
    )


def run(args: argparse.Namespace) -> int:
    import logging

    from superpod.cluster import heap

    from superpod_sandbox import codec
    from superpod_sandbox.apiserver import server

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    async def serve() -> None:
        async with server.Sandbox(
            args.port,
            use_tls=args.tls,
            kubeconfig=args.kubeconfig,
            strict_authentication=args.strict_authentication,
        ) as api:
            print(f"sandbox API server at {api.url}; kubeconfig: {api.kubeconfig}", flush=True)
            for user in args.user:
                name, _, groups = user.partition(":")
                path = api.user_kubeconfig(
                    name, tuple(g for g in groups.split(",") if g), f"{api.kubeconfig}-{name}"
                )
                print(f"kubeconfig of user {name}: {path}", flush=True)
            await asyncio.Event().wait()

    heap.freeze_survivors()  # the store holds every object: full collections scan what is new
    codec.run(serve())
    return 0
