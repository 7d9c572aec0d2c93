"""CPU of the sandbox API server for a paged list by label selector, as a replica lists device-info ConfigMaps.

Starts `superpod sandbox` in a process of its own, creates `--objects` ConfigMaps in kube-system, all labelled
`mx-consumer-cim=true` (as the device plugin labels every one) and a 64th of them `sp=3`, then lists each
selector in pages of `--limit` and prints the pages, the wall-clock time and the API server's CPU
(/proc/<pid>/stat). Run it on two trees to compare (the operator's package from one, the sandbox from the other,
by PYTHONPATH):

    PYTHONPATH=. .venv/bin/python tools/measure_paged_list.py --objects 30000
    PYTHONPATH=/tmp/old/sandbox:/tmp/old/operator .venv/bin/python tools/measure_paged_list.py --objects 30000
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time

import aiohttp

SELECTORS = ("mx-consumer-cim=true", "sp=3")


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measure(args: argparse.Namespace) -> None:
    workdir = tempfile.mkdtemp(prefix="superpod-paged-")
    port = str(args.port)
    sandbox = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "superpod.cli",
            "sandbox",
            "--port",
            port,
            "--kubeconfig",
            f"{workdir}/kubeconfig",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    path = "/api/v1/namespaces/kube-system/configmaps"
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=32)) as session:
            for _ in range(100):
                try:
                    async with session.get(base + "/version"):
                        break
                except aiohttp.ClientError:
                    await asyncio.sleep(0.2)
            turns = asyncio.Semaphore(32)

            async def create(index: int) -> None:
                labels = {"mx-consumer-cim": "true", "sp": str(index % 64)}
                body = {"metadata": {"name": f"mindx-dl-deviceinfo-{index:06d}", "labels": labels}}
                async with turns, session.post(base + path, json=body | {"data": {"x": "y" * 500}}) as answer:
                    answer.raise_for_status()

            await asyncio.gather(*(create(index) for index in range(args.objects)))
            for selector in SELECTORS:
                began, cpu = time.monotonic(), cpu_seconds(sandbox.pid)
                token, count, pages = None, 0, 0
                while True:
                    query = {"labelSelector": selector, "limit": str(args.limit)} | (
                        {"continue": token} if token else {}
                    )
                    async with session.get(base + path, params=query) as answer:
                        page = await answer.json()
                    count, pages = count + len(page["items"]), pages + 1
                    token = page["metadata"].get("continue")
                    if not token:
                        break
                print(
                    f"{selector}: {count} objects in {pages} pages, {time.monotonic() - began:.2f} s, "
                    f"API server CPU {cpu_seconds(sandbox.pid) - cpu:.2f} s"
                )
    finally:
        sandbox.terminate()
        sandbox.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=30_000)
    parser.add_argument("--limit", type=int, default=500, help="objects per page, as a reflector asks")
    parser.add_argument("--port", type=int, default=28431, help="the sandbox's port on 127.0.0.1")
    asyncio.run(measure(parser.parse_args()))


if __name__ == "__main__":
    main()
