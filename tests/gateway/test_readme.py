"""The README as a new user meets it: its shell blocks run as written, in order, against a gateway started as
`make run` starts it (the demo account, the embedded simulators), on free ports and a data folder of its own; and
the tests themselves stay off what `make run` uses (its ports and the repository's data/), so that `make test`
passes while it runs."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import aiohttp
import yarl
from sqlalchemy.engine import make_url

from gateway.bench.processes import Gateway, base_env, free_port, stop
from gateway.settings import PROJECT_ROOT, load_settings
from tests.conftest import make_settings

README = PROJECT_ROOT / "README.md"
SKIP = "<!-- not run by tests/gateway/test_readme.py"
# besides the part before them
SECTIONS = ("Numbers and US 10DLC registration", "Toll-free verification", "Voice messages", "gatewayctl")


def readme_blocks() -> list[str]:
    """The ```sh blocks before the first ## heading and in SECTIONS, in the README's order, but those marked as
    not run (the line before them)."""
    parts = re.split(r"^## ", README.read_text(), flags=re.MULTILINE)
    return [body for part in [parts[0]] + [p for p in parts[1:] if p.startswith(SECTIONS)]
            for before, body in re.findall(r"([^\n]*)\n```sh\n(.*?)```", part, re.DOTALL)
            if not before.startswith(SKIP)]


def test_the_readme_blocks_hold_the_operator_flow() -> None:
    blocks = readme_blocks()
    script = "\n".join(blocks)
    for command in ("KEY=$(cat data/demo_api_key)", "/v1/messages/batch", "inventory import examples/numbers.csv",
                    "brands register --account $ACCOUNT", "campaigns associate $CAMPAIGN $NUMBER",
                    "voice send", "optouts import", "accounts list --json"):
        assert command in script
    assert "bench sms" not in script and "simulator --smpp-port" not in script  # they run for minutes, or forever
    flow = next(b for b in blocks if "brands register" in b)  # ids it made, never a fixed 1 (the demo account)
    assert not re.search(r"(--account|--brand|review|associate|show) 1\b", flow)


async def test_the_readme_runs_as_written(tmp_path: Path) -> None:
    data, cwd = tmp_path / "data", tmp_path / "clone"
    data.mkdir()
    cwd.mkdir()
    # a folder like a fresh clone's: the examples, the virtual environment, and data/ (the gateway's)
    for name, target in (("examples", PROJECT_ROOT / "examples"), (".venv", Path(sys.prefix)), ("data", data)):
        (cwd / name).symlink_to(target)
    smpp, control, voice = free_port(), free_port(), free_port()
    shared = {"GATEWAY_SERVER_DATA_DIR": str(data), "GATEWAY_DATABASE_URL": f"sqlite+aiosqlite:///{data}/gateway.db",
              "GATEWAY_VOICE_CACHE_DIR": str(data / "audio")}
    log = open(tmp_path / "gateway.log", "w")
    gateway = Gateway(data, {}, log)
    gateway.env = {**base_env(), **shared, "GATEWAY_PORT": str(gateway.port),
                   "GATEWAY_SIMULATOR_SMPP_PORT": str(smpp), "GATEWAY_CARRIER_SIM_PORT": str(smpp),
                   "GATEWAY_SIMULATOR_HTTP_PORT": str(control), "GATEWAY_SIMULATOR_VOICE_PORT": str(voice),
                   "GATEWAY_VOICE_CARRIER_URL": f"http://127.0.0.1:{voice}",
                   "GATEWAY_REGISTRY_SIMULATOR_PORT": "0"}
    gateway.start()  # what `make run` runs: gatewayctl run --demo
    try:
        await gateway.ready(timeout=60)
        script = "set -euxo pipefail\n" + "\n".join(readme_blocks()).replace("http://127.0.0.1:8080", gateway.url)
        env = {**base_env(), **shared, "GATEWAY_URL": gateway.url,
               "GATEWAY_SIMULATOR_URL": f"http://127.0.0.1:{control}"}
        done = subprocess.run(["bash", "-c", script], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"{done.stdout}\n{done.stderr[-4000:]}"
        assert "AT&T: 4,500 SMS per minute" in done.stdout and "status: completed" in done.stdout
        # toll-free: refused before its verification, queued from it after
        assert '"code": "toll_free_not_verified"' in done.stdout
        assert '"status": "queued", "from": "+18885550144"' in done.stdout
        admin = {"Authorization": f"Bearer {(data / 'operator_token').read_text().strip()}"}
        async with aiohttp.ClientSession(headers=admin) as http:
            accounts = (await (await http.get(gateway.url + "/admin/accounts")).json())["accounts"]
            acme = next(a["id"] for a in accounts if a["name"] == "Acme Inc")
            numbers = (await (await http.get(gateway.url + "/admin/numbers", params={"type": "ten_dlc"})).json())
        # the 10DLC flow registered the account it had just made, not the demo account
        assert [(n["account_id"], n["status"]) for n in numbers["numbers"]] == [(acme, "active")] and acme != 1
    finally:
        stop(gateway.process)
        log.close()


def test_tests_stay_off_what_make_run_uses(tmp_path: Path) -> None:
    """`make run` serves on the default ports and keeps its data in the repository's data/."""
    defaults = load_settings(env={})
    taken = {defaults.server.port, defaults.simulator.smpp_port, defaults.simulator.http_port,
             defaults.simulator.voice_port, yarl.URL(defaults.voice.carrier_url).port,
             defaults.registry.simulator_port}
    s = make_settings(tmp_path)
    used = {s.server.port, s.simulator.smpp_port, s.simulator.http_port, s.simulator.voice_port,
            yarl.URL(s.voice.carrier_url).port, s.registry.simulator_port, *(c.port for c in s.carriers)}
    assert not used & taken
    for path in (s.data_path, s.path(s.voice.cache_dir), Path(make_url(s.database_url).database)):
        assert path.is_relative_to(tmp_path)
    gateway = Gateway.for_simulator(tmp_path, type("Sim", (), {"smpp_port": free_port()})(), "t", sys.stderr)
    assert yarl.URL(gateway.env["GATEWAY_VOICE_CARRIER_URL"]).port not in taken
    assert int(gateway.env["GATEWAY_REGISTRY_SIMULATOR_PORT"]) not in taken
    assert Path(gateway.env["GATEWAY_VOICE_CACHE_DIR"]).is_relative_to(tmp_path)


def test_make_installs_system_packages_waiting_for_the_lock(tmp_path: Path) -> None:
    """`make run` on a machine without espeak-ng and ffmpeg: it says that it installs them, and asks apt to wait
    for the package lock (another apt, unattended upgrades) instead of failing at once."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("id", "env", "sleep"):  # what the recipe runs besides apt-get; not espeak-ng nor ffmpeg
        (bin_dir / tool).symlink_to(shutil.which(tool))
    calls = tmp_path / "apt-calls"
    (bin_dir / "apt-get").write_text(f'#!/bin/sh\necho "$*" >> {calls}\n')
    (bin_dir / "sudo").write_text('#!/bin/sh\nexec "$@"\n')
    for fake in ("apt-get", "sudo"):
        (bin_dir / fake).chmod(0o755)
    done = subprocess.run([shutil.which("make"), "-s", "-C", str(PROJECT_ROOT), "system-deps"], capture_output=True,
                          text=True, timeout=60, env={**os.environ, "PATH": str(bin_dir)})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "installing system packages: espeak-ng ffmpeg" in done.stdout
    update, install = calls.read_text().splitlines()
    assert update.startswith("-o DPkg::Lock::Timeout=600 update")
    assert install.startswith("-o DPkg::Lock::Timeout=600 install") and install.endswith("espeak-ng ffmpeg")
