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


def _with_http_examples(tmp_path: Path) -> Path:
    """The default file with its commented HTTP carrier examples uncommented."""
    text = DEFAULT_CONFIG.read_text()
    start = text.index("# [[carriers]]")
    examples = "\n".join(line[2:] if line.startswith("# ") else "" if line == "#" else line
                         for line in text[start:].splitlines())
    path = tmp_path / "http.toml"
    path.write_text(text[:start] + examples + "\n")
    return path


def test_http_carrier_examples_load(tmp_path: Path):
    s = load_settings(_with_http_examples(tmp_path), env={"GATEWAY_CARRIER_CLOUD_AUTH_VALUE": "Bearer from-env"})
    kannel, cloud = s.carriers[1:]
    assert (kannel.type, kannel.profile, kannel.username, kannel.max_parts) == ("http", "kannel", "gateway", 11)
    assert (cloud.profile, cloud.auth_value) == ("json", "Bearer from-env")
    assert "from-env" not in repr(cloud)
    fields = cloud.json_fields()
    assert (fields.status_map["DELIVERED"], fields.status_map["failed"]) == ("DELIVRD", "UNDELIV")


@pytest.mark.parametrize("key, value, fragment", [
    ("PROFILE", "xml", "cloud.profile"),
    ("URL", "ftp://x", "cloud.url"),
    ("CONCURRENCY", "0", "concurrency"),
    ("ID_PATH", "data.id", "JSON pointer"),
    ("STATUS_MAP", "ok=GREAT", "unknown receipt stat"),
    ("STATUS_MAP", "DELIVRD", "provider status=STAT"),
])
def test_bad_http_carrier_settings(tmp_path: Path, key, value, fragment):
    with pytest.raises(SettingsError, match=fragment):
        load_settings(_with_http_examples(tmp_path), env={f"GATEWAY_CARRIER_CLOUD_{key}": value})


def _with_readme_example(tmp_path: Path, after: str) -> Path:
    """The default configuration plus the README's first TOML example after the text ``after``, as a file."""
    readme = (DEFAULT_CONFIG.parent.parent / "README.md").read_text()
    example = readme.split(after, 1)[1].split("```toml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "readme.toml"
    path.write_text(DEFAULT_CONFIG.read_text() + "\n" + example)
    return path


def test_readme_http_carrier_example_loads(tmp_path: Path):
    kannel, cloud = load_settings(_with_readme_example(tmp_path, "## HTTP carriers"), env={}).carriers[1:]
    assert (kannel.profile, cloud.profile, cloud.json_fields().id_path) == ("kannel", "json", "/message/id")


def test_simulated_carriers_load(tmp_path: Path):
    path = tmp_path / "fleet.toml"
    path.write_text(DEFAULT_CONFIG.read_text() + '\n[[simulator.carriers]]\nname = "alpha"\nsmpp_port = 2785\n'
                    '\n[[simulator.carriers]]\nname = "beta"\nthroughput = 50\nerror_rate = 0.1\n'
                    'outcome = "UNDELIV"\ndisconnect_every = 30\n')
    sims = load_settings(path, env={}).simulator.carriers
    assert [(c.name, c.smpp_port, c.throughput, c.outcome) for c in sims] == [
        ("alpha", 2785, 0.0, "DELIVRD"), ("beta", 0, 50.0, "UNDELIV")]
    assert load_settings(env={}).simulator.carriers == []


@pytest.mark.parametrize("table, fragment", [
    ('name = "a"\nerror_rate = 3', "error_rate"),
    ('name = "a"\noutcome = "HAPPY"', "outcome"),
    ('name = "a"\nspeed = 3', "unknown setting"),
    ('name = "a"\n\n[[simulator.carriers]]\nname = "a"', "unique"),
])
def test_bad_simulated_carriers(tmp_path: Path, table, fragment):
    path = tmp_path / "bad.toml"
    path.write_text(DEFAULT_CONFIG.read_text() + "\n[[simulator.carriers]]\n" + table + "\n")
    with pytest.raises(SettingsError, match=fragment):
        load_settings(path, env={})


def test_readme_simulator_http_face_example_loads(tmp_path: Path):
    """The README's carriers on the simulator's HTTP face, with [simulator] sms_http_port as it says."""
    path = _with_readme_example(tmp_path, "**The simulator's HTTP face.**")
    s = load_settings(path, env={"GATEWAY_SIMULATOR_SMS_HTTP_PORT": "2778"})
    kannel, json_api = s.carriers[1:]
    assert s.simulator.sms_http_port == 2778 and load_settings(env={}).simulator.sms_http_port == -1
    assert (kannel.profile, kannel.url, json_api.profile, json_api.auth_value) == (
        "kannel", "http://127.0.0.1:2778/cgi-bin/sendsms", "json", "Bearer secret")
    with pytest.raises(SettingsError, match="sms_http_port"):
        load_settings(env={"GATEWAY_SIMULATOR_SMS_HTTP_PORT": "-2"})
