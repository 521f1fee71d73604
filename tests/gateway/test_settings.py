from __future__ import annotations

from pathlib import Path

import pytest

from gateway.settings import DEFAULT_CONFIG, SettingsError, load_settings


def test_default_file_loads_and_matches_defaults():
    s = load_settings(env={})
    assert s.server.port == 8080 and s.simulator.smpp_port == 2775
    assert s.database_url.startswith("sqlite+aiosqlite:////")
    assert [c.name for c in s.carriers] == ["sim"]


def test_environment_overrides_every_section():
    s = load_settings(env={"GATEWAY_PORT": "9001", "GATEWAY_DATABASE_URL": "postgresql+asyncpg://x/y",
                           "GATEWAY_SIMULATOR_SMPP_PORT": "3775", "GATEWAY_DISPATCHER_BATCH_SIZE": "7",
                           "GATEWAY_SIMULATOR_EMBEDDED": "false"})
    assert (s.server.port, s.database_url, s.simulator.smpp_port, s.dispatcher.batch_size) == (
        9001, "postgresql+asyncpg://x/y", 3775, 7)
    assert s.simulator.embedded is False


@pytest.mark.parametrize("env, fragment", [
    ({"GATEWAY_PORT": "eighty"}, "server.port"),
    ({"GATEWAY_PORT": "70000"}, "server.port"),
    ({"GATEWAY_SIMULATOR_EMBEDDED": "maybe"}, "simulator.embedded"),
    ({"GATEWAY_CONFIG": "/nonexistent.toml"}, "does not exist"),
])
def test_bad_values_name_the_setting(env, fragment):
    with pytest.raises(SettingsError) as err:
        load_settings(env=env)
    assert fragment in str(err.value)


def test_unknown_keys_in_the_file_are_refused(tmp_path: Path):
    bad = tmp_path / "bad.toml"
    bad.write_text(DEFAULT_CONFIG.read_text() + "\n[server2]\nx = 1\n")
    with pytest.raises(SettingsError, match="server2"):
        load_settings(bad, env={})


def test_carrier_repr_hides_the_password():
    s = load_settings(env={})
    assert "secret" not in repr(s.carriers[0]) and "secret" not in repr(s)


def test_carrier_keys_from_the_environment():
    s = load_settings(env={"GATEWAY_CARRIER_SIM_PASSWORD": "from-env", "GATEWAY_CARRIER_SIM_PORT": "3775",
                           "GATEWAY_CARRIER_OTHER_PORT": "1"})
    assert (s.carriers[0].password, s.carriers[0].port) == ("from-env", 3775)
