"""The memory report a running gateway logs on SIGUSR1: it finds the large containers by where they hang, and
never writes what they hold (a dict's keys may be key digests or phone numbers)."""

from __future__ import annotations

import json

from gateway.cli import memory


class _Service:
    def __init__(self) -> None:
        self.window = list(range(5000))
        self.by_key = {"gk_live_0123456789abcdef": {"sent": list(range(2000))}}


async def test_the_report_names_large_containers_by_their_attributes_and_keeps_data_keys_out():
    service = _Service()
    report = memory.report({"numbers": lambda: 7}, {"app": service})
    found = {path: (kind, size) for path, kind, size in report["big_containers"]}
    assert found["app.window"] == ("list[int]", 5000)
    assert found["app.by_key[str][str]"] == ("list[int]", 2000)
    assert "gk_live" not in json.dumps(report)
    assert report["caches"] == {"numbers": 7} and report["tasks"] >= 1 and report["rss_mb"] > 0
