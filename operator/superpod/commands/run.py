"""`superpod run`: the operator (kopf), cluster-wide unless --namespace is given."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys

from superpod.controller import settings


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log pipelines (Loki, Elasticsearch)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    settings.add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    try:
        config = settings.from_sources(args)
    except ValueError as error:
        print(f"superpod run: {error}", file=sys.stderr)
        return 2
    handler = logging.StreamHandler()
    handler.setFormatter(
        JsonFormatter()
        if config.log_format == "json"
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    logging.basicConfig(level=logging.DEBUG if config.verbose else logging.INFO, handlers=[handler])
    # what no format here shows is not gathered for each record (the logging HOWTO's "Optimization"): the
    # caller's file and line (a walk up the stack), the thread, the process and its multiprocessing name
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    if not config.verbose:
        # kopf logs two INFO lines per handler run ("succeeded", "processed"): a few percent of the CPU
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    from superpod.controller import admission, operator

    try:
        admission.client_verification(config.webhook_client_ca_file)  # a wrong file: one line, exit 2
    except ValueError as error:
        print(f"superpod run: {error}", file=sys.stderr)
        return 2
    from superpod.cluster import heap

    heap.freeze_survivors()  # the mirror of the cluster is long-lived: full collections scan what is new
    asyncio.run(operator.run(config))
    return 0
