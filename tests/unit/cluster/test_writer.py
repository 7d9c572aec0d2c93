"""The operator's timestamps: what Kubernetes writes (RFC 3339, seconds, UTC), and the time it is."""

from __future__ import annotations

import datetime
import time

import pytest
from superpod.cluster import writer


def test_a_timestamp_is_rfc3339_in_seconds_utc_and_the_time_it_is() -> None:
    before = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    stamp = writer.now()
    after = datetime.datetime.now(datetime.UTC)
    parsed = datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC)
    assert before <= parsed <= after


def test_a_timestamp_follows_the_clock_from_one_second_to_the_next(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1_765_000_000.2]
    monkeypatch.setattr(time, "time", lambda: clock[0])
    first = writer.now()
    clock[0] += 0.5
    assert writer.now() == first  # the same second
    clock[0] += 0.5
    assert writer.now() == "2025-12-06T05:46:41Z" and first == "2025-12-06T05:46:40Z"
    clock[0] += 86_400
    assert writer.now() == "2025-12-07T05:46:41Z"
