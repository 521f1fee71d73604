"""`python -m registry.csp`: the 10DLC registry simulator as a process of its own, reached over HTTP."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys

from registry.csp.client import CspClient, CspError

BRAND = {"entityType": "PRIVATE_PROFIT", "displayName": "Acme", "companyName": "Acme Inc", "ein": "123456789",
         "phone": "+12025550100", "country": "US", "email": "ops@acme.example", "vertical": "RETAIL",
         "brandRelationship": "BASIC_ACCOUNT", "referenceId": "cli-1"}
ENV = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_SIM_")}


async def _start(*args: str) -> tuple[asyncio.subprocess.Process, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "registry.csp", "--port", "0", *args, env=ENV,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    line = (await asyncio.wait_for(process.stdout.readline(), 60)).decode()
    found = re.search(r"registry simulator on (http://127\.0\.0\.1:\d+)", line)
    assert found, line
    return process, found.group(1)


async def _stop(process: asyncio.subprocess.Process, sig: int = signal.SIGINT) -> int:
    process.send_signal(sig)
    return await asyncio.wait_for(process.wait(), 30)


async def test_the_simulator_serves_the_csp_api_with_basic_auth_and_keeps_a_snapshot(tmp_path):
    snapshot = tmp_path / "registry.json"
    process, url = await _start("--api-key", "k1", "--api-secret", "s1", "--snapshot", str(snapshot))
    try:
        async with CspClient(url, "k1", "s1", retries=0) as client:
            brand = await client.register_brand(BRAND)
            assert brand["cspId"] == "SSIM001" and (await client.clock())["now"].endswith("Z")
        async with CspClient(url, "k1", "wrong", retries=0) as client:
            try:
                await client.get_brand(brand["brandId"])
                raise AssertionError("a wrong secret was accepted")
            except CspError as err:
                assert (err.code, err.status) == ("UNAUTHORIZED", 401)
    finally:
        assert await _stop(process) == 0
    process, url = await _start("--api-key", "k1", "--api-secret", "s1", "--snapshot", str(snapshot),
                                "--csp-id", "SABC123")
    try:
        async with CspClient(url, "k1", "s1", retries=0) as client:
            assert (await client.get_brand(brand["brandId"]))["brandId"] == brand["brandId"]
            assert (await client.register_brand(BRAND))["brandId"] == brand["brandId"]
    finally:
        assert await _stop(process, signal.SIGTERM) == 0


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "registry.csp", *args], env=ENV, capture_output=True, text=True,
                          timeout=60)


def test_missing_credentials_a_bad_csp_id_and_a_taken_port_are_sentences():
    done = _run("--port", "0")
    assert done.returncode == 2 and "--api-key and --api-secret" in done.stderr
    done = _run("--port", "0", "--api-key", "k", "--api-secret", "s", "--csp-id", "nope")
    assert done.returncode == 2 and "expected S and six" in done.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        done = _run("--port", str(taken.getsockname()[1]), "--api-key", "k", "--api-secret", "s")
    assert done.returncode == 1 and "Another registry simulator" in done.stderr, done.stderr
