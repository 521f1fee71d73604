"""``[registry]``: the 10DLC registry the gateway calls as a Campaign Service Provider (CSP).

``mode = "simulator"`` runs a registry simulator of the same shape inside the gateway's process, on a port of its
own (``make run``, tests); ``mode = "remote"`` calls the registry at ``base_url`` with the CSP's API key and secret,
which belong in the environment (``GATEWAY_REGISTRY_API_KEY``, ``GATEWAY_REGISTRY_API_SECRET``) and are never
logged nor shown.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.settings_values import SettingsError

MODES = ("simulator", "remote")


@dataclass
class RegistrySettings:
    mode: str = "simulator"  # simulator | remote
    base_url: str = ""  # remote: the CSP API's base, the part before /v1 (the DCA's is <base_url>/dca)
    api_key: str = field(default="", repr=False)  # remote: GATEWAY_REGISTRY_API_KEY
    api_secret: str = field(default="", repr=False)  # remote: GATEWAY_REGISTRY_API_SECRET
    cnp_id: str = "DCASIM1"  # the upstream connectivity partner (DCA) campaigns are shared with
    # the key of the token in the event URL the registry posts to; empty: generated once into data_dir
    webhook_secret: str = field(default="", repr=False)
    # the gateway's base URL as the registry reaches it (events go to <events_url>/registry/events/<token>);
    # empty: server.public_url when set, else the address the operator's request came to
    events_url: str = ""
    reconcile_interval_s: float = 60.0  # how often brands, campaigns and orders still pending are polled
    full_reconcile_interval_s: float = 3600.0  # how often every brand and live campaign is polled
    timeout_s: float = 10.0  # one registry call
    retries: int = 4  # more attempts of a call after a 5xx, a timeout or a connection error
    register_wait_s: float = 2.0  # a registration waits this long for the identity check's event
    simulator_host: str = "127.0.0.1"
    simulator_port: int = 2778  # 0: any free port
    simulator_snapshot: str = "registry_simulator.json"  # in data_dir: its state across restarts; "": none


def validate_registry(r: RegistrySettings) -> None:
    if r.mode not in MODES:
        raise SettingsError("registry.mode must be simulator or remote")
    if r.mode == "remote":
        if not r.base_url.startswith(("http://", "https://")):
            raise SettingsError("registry.base_url must be the registry's http(s) URL when registry.mode is remote")
        if not (r.api_key and r.api_secret):
            raise SettingsError("registry.api_key and registry.api_secret are needed when registry.mode is remote "
                                "(set GATEWAY_REGISTRY_API_KEY and GATEWAY_REGISTRY_API_SECRET)")
    if r.events_url and not r.events_url.startswith(("http://", "https://")):
        raise SettingsError("registry.events_url must be an http(s) URL")
    if r.reconcile_interval_s <= 0 or r.full_reconcile_interval_s <= 0 or r.timeout_s <= 0:
        raise SettingsError("registry.reconcile_interval_s, full_reconcile_interval_s and timeout_s must be above 0")
    if r.retries < 0 or r.register_wait_s < 0:
        raise SettingsError("registry.retries and registry.register_wait_s must be 0 or more")
    if not 0 <= r.simulator_port < 65536:
        raise SettingsError("registry.simulator_port must be between 0 and 65535")
    if not r.cnp_id.isalnum():
        raise SettingsError("registry.cnp_id must be the DCA's id (letters and digits)")
