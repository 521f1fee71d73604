"""A real Kannel (the Debian package's bearerbox and smsbox) in the foreground with a generated configuration on
free ports, its SMSC being our SMPP simulator: for `bench sms --carrier http --kannel` and the Kannel tests."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Awaitable, Callable

import aiohttp

from gateway.bench.processes import ProcessError, free_port

USERNAME, PASSWORD = "gw", "kannel-pw"
MAX_MESSAGES = 11  # sendsms-user max-messages: more than the 1,600 GSM-7 characters' 11 parts are never sent


def binary(name: str) -> str | None:
    return shutil.which(name) or next((p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.access(p, os.X_OK)),
                                      None)


def binaries() -> tuple[str, str] | None:
    """bearerbox and smsbox, or None when Kannel is not installed."""
    bearerbox, smsbox = binary("bearerbox"), binary("smsbox")
    return (bearerbox, smsbox) if bearerbox and smsbox else None


@dataclass
class Kannel:
    sendsms_url: str
    admin_url: str
    log_dir: Path
    processes: list[subprocess.Popen]
    output: IO | None = None  # their standard output and error

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-4000:]}"
                         for p in sorted(self.log_dir.glob("*.log")))


def config(tmp: Path, smsc_port: int, admin: int, box: int, sendsms: int, inbound_url: str | None,
           log_level: int = 0) -> str:
    service = (f'group = sms-service\nkeyword = default\ncatch-all = true\nmax-messages = 0\n'
               f'get-url = "{inbound_url}"\n' if inbound_url else
               'group = sms-service\nkeyword = default\nmax-messages = 0\ntext = "ignored"\n')
    return f"""group = core
admin-port = {admin}
admin-password = admin-pw
status-password = admin-pw
smsbox-port = {box}
box-allow-ip = 127.0.0.1
admin-allow-ip = 127.0.0.1
log-file = "{tmp}/bearerbox.log"
log-level = {log_level}
access-log = "{tmp}/access.log"
dlr-storage = internal

group = smsc
smsc = smpp
smsc-id = sim
host = 127.0.0.1
port = {smsc_port}
transceiver-mode = true
smsc-username = gateway
smsc-password = secret
system-type = ""
msg-id-type = 0x00
reconnect-delay = 1
log-file = "{tmp}/smsc.log"
log-level = {log_level}

group = smsbox
bearerbox-host = 127.0.0.1
bearerbox-port = {box}
sendsms-port = {sendsms}
sendsms-interface = 127.0.0.1
log-file = "{tmp}/smsbox.log"
log-level = {log_level}
access-log = "{tmp}/smsbox-access.log"

group = sendsms-user
username = {USERNAME}
password = {PASSWORD}
max-messages = {MAX_MESSAGES}
concatenation = true

{service}"""


async def _until(check: Callable[[], Awaitable[bool]], what: str, kannel: Kannel, timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        for p in kannel.processes:
            if p.poll() is not None:
                raise ProcessError(f"{p.args[0]} ended (exit {p.returncode}) before {what}\n{kannel.logs()}")
        if asyncio.get_running_loop().time() > deadline:
            raise ProcessError(f"Kannel: {what} did not happen within {timeout} s\n{kannel.logs()}")
        await asyncio.sleep(0.1)


async def start_kannel(tmp: Path, smsc_port: int, inbound_url: str | None = None, log_level: int = 0) -> Kannel:
    """bearerbox and smsbox started, the SMPP link to the simulator online, sendsms answering. ProcessError when
    Kannel is not installed or does not come up (with its logs)."""
    found = binaries()
    if found is None:
        raise ProcessError("Kannel is not installed (apt-get install kannel: bearerbox and smsbox)")
    bearerbox, smsbox = found
    tmp.mkdir(parents=True, exist_ok=True)
    admin, box, sendsms = free_port(), free_port(), free_port()
    conf = tmp / "kannel.conf"
    conf.write_text(config(tmp, smsc_port, admin, box, sendsms, inbound_url, log_level))
    kannel = Kannel(f"http://127.0.0.1:{sendsms}/cgi-bin/sendsms", f"http://127.0.0.1:{admin}", tmp, [])
    out = kannel.output = open(tmp / "stdout.log", "w")
    kannel.processes.append(subprocess.Popen([bearerbox, str(conf)], stdout=out, stderr=subprocess.STDOUT,
                                             start_new_session=True))
    try:
        async with aiohttp.ClientSession() as http:
            async def smsc_online() -> bool:
                try:
                    async with http.get(f"{kannel.admin_url}/status.txt?password=admin-pw") as resp:
                        return "online" in (await resp.text()).split("SMSC connections:")[-1]
                except aiohttp.ClientError:
                    return False

            await _until(smsc_online, "the SMPP link to the simulator came online", kannel)
            kannel.processes.append(subprocess.Popen([smsbox, str(conf)], stdout=out, stderr=subprocess.STDOUT,
                                                     start_new_session=True))

            async def sendsms_up() -> bool:
                try:
                    async with http.get(kannel.sendsms_url) as resp:
                        return resp.status in (400, 403, 202)
                except aiohttp.ClientError:
                    return False

            await _until(sendsms_up, "smsbox answered sendsms", kannel)
    except BaseException:
        stop_kannel(kannel)
        raise
    return kannel


def stop_kannel(kannel: Kannel) -> None:
    """SIGTERM, and SIGKILL after a second: bearerbox may wait many seconds for its SMSC link to close, and
    nothing Kannel holds (its internal DLR store) outlives its run anyway."""
    for p in reversed(kannel.processes):
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in reversed(kannel.processes):
        try:
            p.wait(1)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    if kannel.output is not None:
        kannel.output.close()
