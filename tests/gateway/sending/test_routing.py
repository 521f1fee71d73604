"""The route table as pure logic, table-driven: which route matches a message, which carrier its action gives, and
the clear errors of a bad [[routes]] table."""

from __future__ import annotations

import itertools

import pytest

from gateway.sending.routing import Facts, Route, choose, first_match, route_cost
from gateway.settings import SettingsError, load_settings

UK = Facts("+447700900123", "GB", "unknown", 1, "long_code", "transactional")
US = Facts("+14155550123", "US", "tmobile", 2, "ten_dlc", "promotional")

TABLE = (
    Route("uk-mobile", prefixes=("+4477",), carrier="b"),
    Route("acct-7", accounts=(7,), failover=("a", "b")),
    Route("tmo-promo", recipient_carriers=("tmobile",), message_types=("promotional",), carrier="a"),
    Route("short", number_kinds=("short_code",), split=(("a", 50.0), ("b", 50.0))),
    Route("ie", countries=("IE",), carrier="a"),
)


@pytest.mark.parametrize("facts, expected", [
    (UK, "uk-mobile"),
    (Facts("+447911123456", "GB", "unknown", 1, "long_code", "transactional"), None),  # +4479: no prefix route
    (Facts("+447911123456", "GB", "unknown", 7, "long_code", "transactional"), "acct-7"),
    (Facts("+447700900123", "GB", "unknown", 7, "long_code", "transactional"), "uk-mobile"),  # first match wins
    (US, "tmo-promo"),
    (Facts("+14155550123", "US", "tmobile", 2, "ten_dlc", "transactional"), None),  # both criteria must hold
    (Facts("+14155550123", "US", "att", 2, "short_code", "transactional"), "short"),
    (Facts("+353851234567", "IE", "unknown", 2, "long_code", "transactional"), "ie"),
    (Facts("+33612345678", "FR", "unknown", 2, "long_code", "transactional"), None),
])
def test_first_match(facts, expected):
    route = first_match(TABLE, facts)
    assert (route.name if route else None) == expected


@pytest.mark.parametrize("route, facts, reason", [
    (Route("r", countries=("IE",), carrier="a"), UK, "country GB is not IE"),
    (Route("r", prefixes=("+1", "+33"), carrier="a"), UK, "+447700900123 starts with none of +1, +33"),
    (Route("r", recipient_carriers=("att",), carrier="a"), US, "recipient carrier tmobile is not att"),
    (Route("r", accounts=(3, 4), carrier="a"), US, "account 2 is not 3/4"),
    (Route("r", number_kinds=("short_code",), carrier="a"), US, "number kind ten_dlc is not short_code"),
    (Route("r", message_types=("transactional",), carrier="a"), US, "message type promotional is not transactional"),
    (Route("r", carrier="a"), US, None),
])
def test_mismatch_says_why(route, facts, reason):
    assert route.mismatch(facts) == reason


@pytest.mark.parametrize("route, ready, expected", [
    (Route("one", carrier="a"), {"a", "b"}, "a"),
    (Route("one", carrier="a"), {"b"}, None),  # a single-carrier route never moves to another carrier
    (Route("fo", failover=("a", "b")), {"a", "b"}, "a"),
    (Route("fo", failover=("a", "b")), {"b"}, "b"),
    (Route("fo", failover=("a", "b")), set(), None),
    (Route("split", split=(("a", 50.0), ("b", 50.0))), {"b"}, "b"),  # a carrier not ready is left out
    (Route("split", split=(("a", 100.0), ("b", 0.0))), {"a", "b"}, "a"),
    (Route("split", split=(("a", 0.0), ("b", 100.0))), {"a"}, None),  # a 0 % share never takes traffic
])
def test_choose(route, ready, expected):
    assert choose(route, ready.__contains__) == expected


def test_split_follows_the_weights():
    route = Route("split", split=(("a", 70.0), ("b", 20.0), ("c", 10.0)))
    points = (i / 1000 for i in itertools.count())  # an even sweep of [0, 1): the shares exactly
    picks = [choose(route, lambda name: True, lambda: next(points)) for _ in range(1000)]
    assert {name: picks.count(name) for name in "abc"} == {"a": 700, "b": 200, "c": 100}


def test_route_cost():
    assert route_cost(Route("r", carrier="a", cost_per_segment=0.035), 3) == 0.105
    assert route_cost(Route("r", carrier="a"), 3) is None
    assert route_cost(None, 3) is None


CARRIERS = '[[carriers]]\nname = "a"\n[[carriers]]\nname = "b"\n'


def _load(tmp_path, routes: str):
    path = tmp_path / "gateway.toml"
    path.write_text(CARRIERS + routes)
    return load_settings(path, env={})


def test_routes_are_read_in_order(tmp_path):
    settings = _load(tmp_path, '[[routes]]\nname = "uk"\nprefixes = ["+44"]\nfailover = ["a", "b"]\n'
                               'cost_per_segment = 0.04\n'
                               '[[routes]]\nname = "rest"\nsplit = ["a=25", "b=75"]\naccounts = [1, 2]\n')
    assert [r.name for r in settings.routes] == ["uk", "rest"]
    assert settings.routes[0].cost_per_segment == 0.04 and settings.routes[1].cost_per_segment is None
    assert settings.routes[1].split_weights() == [("a", 25.0), ("b", 75.0)]
    assert settings.routes[1].accounts == [1, 2]


@pytest.mark.parametrize("route, message", [
    ('prefixes = ["+44"]\ncarrier = "a"', "routes: every route needs a name"),
    ('name = "r"\nprefixes = ["+44"]', "routes.r: give exactly one action, carrier, failover or split (got none)"),
    ('name = "r"\ncarrier = "a"\nfailover = ["a", "b"]', "(got carrier, failover)"),
    ('name = "r"\ncarrier = "c"', "routes.r: no carrier named c (carriers: a, b)"),
    ('name = "r"\nfailover = ["a", "a"]', "routes.r: a carrier is named twice"),
    ('name = "r"\nsplit = ["a=50", "b=40"]', "routes.r.split: the percentages add up to 90, not 100"),
    ('name = "r"\nsplit = ["a:50", "b=50"]', "routes.r.split: 'a:50' is not \"carrier=percent\""),
    ('name = "r"\nprefixes = ["44"]\ncarrier = "a"', "routes.r.prefixes: '44' is not a + followed by digits"),
    ('name = "r"\ncountries = ["uk"]\ncarrier = "a"', "routes.r.countries: 'uk' is not a two-letter ISO"),
    ('name = "r"\nrecipient_carriers = ["o2"]\ncarrier = "a"', "routes.r.recipient_carriers: o2 not among att"),
    ('name = "r"\nnumber_kinds = ["vanity"]\ncarrier = "a"', "routes.r.number_kinds: vanity not among short_code"),
    ('name = "r"\nmessage_types = ["otp"]\ncarrier = "a"', "routes.r.message_types: otp not among transactional"),
    ('name = "r"\ncarrier = "a"\ncost_per_segment = -1', "routes.r.cost_per_segment must be 0 or above"),
    ('name = "r"\ncarrier = "a"\ncost_per_segment = "cheap"', "routes[0] (r).cost_per_segment: expected a number"),
    ('name = "r"\ncarrier = "a"\naccounts = ["x"]', "routes[0] (r).accounts: expected a number"),
    ('name = "r"\ncarrier = "a"\nweight = 3', "routes[0] (r): unknown setting(s) weight"),
    ('name = "r"\ncarrier = "a"\n[[routes]]\nname = "r"\ncarrier = "b"', "routes: names must be unique"),
])
def test_bad_routes_are_refused_clearly(tmp_path, route, message):
    with pytest.raises(SettingsError) as caught:
        _load(tmp_path, "[[routes]]\n" + route + "\n")
    assert message in str(caught.value)


def _uncommented_routes(text: str) -> str:
    start = text.index("# [[routes]]")
    end = text.index("\n\n", start)
    return "\n".join(line[2:] for line in text[start:end].splitlines())


def test_the_config_and_readme_route_examples_load(tmp_path):
    from gateway.settings import DEFAULT_CONFIG, PROJECT_ROOT

    config = DEFAULT_CONFIG.read_text()
    readme = (PROJECT_ROOT / "README.md").read_text().split("## Routes", 1)[1]
    backup = '\n[[carriers]]\nname = "backup"\nport = 2785\n'
    for examples in (_uncommented_routes(config), readme.split("```toml\n", 1)[1].split("```", 1)[0]):
        path = tmp_path / "routes.toml"
        path.write_text(config + backup + examples)
        routes = load_settings(path, env={}).routes
        assert len(routes) >= 2 and all(r.carrier or r.failover or r.split for r in routes)
