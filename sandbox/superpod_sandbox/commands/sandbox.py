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


def run(args: argparse.Namespace) -> int:
    import logging

    from superpod_sandbox.apiserver import server

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    async def serve() -> None:
        async with server.Sandbox(args.port, use_tls=args.tls, kubeconfig=args.kubeconfig) as api:
            print(f"sandbox API server at {api.url}; kubeconfig: {api.kubeconfig}", flush=True)
            await asyncio.Event().wait()

    asyncio.run(serve())
    return 0
