"""gatewayctl bench: the benchmarks (gateway.bench), each printing one JSON object.

A benchmark's code is imported when it runs, not when any gatewayctl command starts."""

from __future__ import annotations

import click


@click.group()
def bench() -> None:
    """Benchmarks; each prints one JSON object (start their own gateway and simulator unless --url)."""


def _targets(f):  # noqa: ANN001, ANN202
    f = click.option("--api-key", envvar="GATEWAY_API_KEY", default=None, help="With --url: the account's API key.")(f)
    f = click.option("--simulator-url", default=None, help="With --url: the simulator's control API.")(f)
    return click.option("--target-url", "target_url", default=None,
                        help="Measure this running gateway instead of starting one.")(f)


@bench.command("sms")
@click.option("--messages", type=click.IntRange(1, 1_000_000), default=30_000, show_default=True)
@click.option("--throttles/--no-throttles", default=False, show_default=True,
              help="Keep the pacing limits (by default they are lifted to measure raw throughput).")
@click.option("--mode", type=click.Choice(["batch", "single"]), default="single", show_default=True,
              help="POST /v1/messages/batch or one POST /v1/messages per message.")
@click.option("--concurrency", type=click.IntRange(1, 512), default=64, show_default=True,
              help="Requests in flight.")
@click.option("--callbacks", type=click.Choice(["none", "final", "all"]), default="all", show_default=True,
              help="Status callbacks on every message to a local receiver that counts and verifies them: for "
                   "every event, for final events only, or none.")
@click.option("--batch", type=click.IntRange(1, 1000), default=500, show_default=True)
@click.option("--timeout", type=float, default=300, show_default=True, help="Seconds to wait for final states.")
@click.option("--instances", type=click.IntRange(1, 16), default=1, show_default=True,
              help="Gateway processes sharing one PostgreSQL queue and Redis limits (more than 1 needs both).")
@click.option("--backend", type=click.Choice(["sqlite", "postgresql"]), default="sqlite", show_default=True,
              help="The gateway's database: its SQLite file, or a scratch PostgreSQL database (with Redis for the "
                   "limits, as with --instances, which implies it).")
@click.option("--database-url", default="postgresql+asyncpg://postgres@127.0.0.1:5432/postgres",
              show_default=True, help="With --instances: a PostgreSQL server on which a scratch database is made.")
@click.option("--redis-url", default="redis://127.0.0.1:6379/0", show_default=True,
              help="With --instances: the Redis that holds the shared limits (under a scratch key prefix).")
@click.option("--rate", type=click.IntRange(1, 10_000), default=5000, show_default=True,
              help="With --instances: the account and short-code limit, kept by all instances together.")
@click.option("--carrier", type=click.Choice(["smpp", "http"]), default="smpp", show_default=True,
              help="The kind of carrier every message goes through: an SMPP bind, or an HTTP SMS carrier against "
                   "the simulator's HTTP face.")
@click.option("--profile", type=click.Choice(["kannel", "json"]), default="kannel", show_default=True,
              help="With --carrier http: the HTTP carrier's profile.")
@click.option("--kannel", is_flag=True,
              help="With --carrier http: through a real Kannel (bearerbox and smsbox, started here with a generated "
                   "configuration) whose SMSC is the simulator, instead of the simulator's HTTP face.")
@click.option("--http-concurrency", type=click.IntRange(1, 1000), default=10, show_default=True,
              help="With --carrier http: the carrier's requests in flight (its concurrency setting).")
@click.option("--webhook-processes", type=click.IntRange(0, 64), default=None,
              help="The gateway's webhook worker processes (0: webhooks sent by the gateway's own process; default: "
                   "[webhooks] processes of the configuration).")
@click.option("--json", "as_json", is_flag=True, help="Accepted for symmetry: the output is always JSON.")
@_targets
def bench_sms(messages: int, throttles: bool, mode: str, concurrency: int, batch: int, timeout: float,
              instances: int, backend: str, database_url: str, redis_url: str, rate: int, callbacks: str, carrier: str,
              profile: str, kannel: bool, http_concurrency: int, webhook_processes: int | None,
              as_json: bool, target_url: str | None, simulator_url: str | None, api_key: str | None) -> None:
    """Throughput and latency of accept -> SMPP -> receipt -> delivered.

    With --instances N (or --backend postgresql for one), N gateway processes share a scratch PostgreSQL database
    and Redis, and the output adds what the simulator saw each second from all of them together against the shared
    --rate limit. With --carrier http, the same through an HTTP SMS carrier (the output names its profile)."""
    from gateway.bench import common, sms

    if kannel and carrier != "http":
        raise click.BadParameter("--kannel goes with --carrier http", param_hint="--kannel")
    common.run(sms.bench_sms(messages=messages, url=target_url, sim_url=simulator_url, key=api_key,
                             throttles=throttles, mode=mode, concurrency=concurrency, batch=batch, timeout=timeout,
                             instances=instances, backend=backend, database_url=database_url, redis_url=redis_url,
                             rate=rate, callbacks=callbacks, carrier=carrier, profile=profile, kannel=kannel,
                             http_concurrency=http_concurrency, webhook_processes=webhook_processes))


@bench.command("throttle")
@click.option("--seconds", type=click.FloatRange(2, 3600), default=20, show_default=True)
@click.option("--carrier-limits", "trust_score", type=click.IntRange(0, 100), default=None,
              help="Instead: a 10DLC campaign at this trust score, with the simulator enforcing AT&T's limit for "
                   "it; counts ESME_RTHROTTLED answers.")
@click.option("--json", "as_json", is_flag=True, help="Accepted for symmetry: the output is always JSON.")
@_targets
def bench_throttle(seconds: float, trust_score: int | None, as_json: bool, target_url: str | None,
                   simulator_url: str | None, api_key: str | None) -> None:
    """Queue SECONDS x the account's limit at once; print the per-second counts the simulator saw."""
    from gateway.bench import common, limits

    if trust_score is not None:
        common.run(limits.bench_carrier_limits(seconds=seconds, trust_score=trust_score, url=target_url,
                                               sim_url=simulator_url, key=api_key))
    else:
        common.run(limits.bench_throttle(seconds=seconds, url=target_url, sim_url=simulator_url, key=api_key))


@bench.command("import")
@click.option("--rows", type=click.IntRange(1, 1_000_000), default=100_000, show_default=True)
@click.option("--concurrency", type=click.IntRange(1, 64), default=4, show_default=True,
              help="Dry runs in flight at once from another tenant while the import runs.")
@click.option("--json", "as_json", is_flag=True, help="Accepted for symmetry: the output is always JSON.")
@_targets
def bench_import(rows: int, concurrency: int, as_json: bool, target_url: str | None, simulator_url: str | None,
                 api_key: str | None) -> None:
    """A ROWS-row opt-out CSV import: its duration, and the p99 of another tenant's dry runs meanwhile."""
    from gateway.bench import common, two_way

    common.run(two_way.bench_import(rows=rows, concurrency=concurrency, url=target_url, sim_url=simulator_url,
                                    key=api_key))


@bench.command("inbound")
@click.option("--rate", type=click.FloatRange(1, 5000), default=200, show_default=True, help="Messages per second.")
@click.option("--seconds", type=click.FloatRange(1, 3600), default=10, show_default=True)
@click.option("--receiver-down", "receiver_down", type=click.FloatRange(0, 3600), default=0, show_default=True,
              help="The customer's webhook receiver answers 503 for this many seconds first.")
@click.option("--stop-every", type=click.IntRange(0, 1_000_000), default=10, show_default=True,
              help="Every Nth message is a STOP (0: none).")
@click.option("--timeout", type=float, default=180, show_default=True, help="Seconds to wait for deliveries.")
@click.option("--json", "as_json", is_flag=True, help="Accepted for symmetry: the output is always JSON.")
@_targets
def bench_inbound(rate: float, seconds: float, receiver_down: float, stop_every: int, timeout: float, as_json: bool,
                  target_url: str | None, simulator_url: str | None, api_key: str | None) -> None:
    """Inbound messages at RATE/s: webhook latency, STOP confirmation latency, and lost."""
    from gateway.bench import common, two_way

    common.run(two_way.bench_inbound(rate=rate, seconds=seconds, receiver_down_s=receiver_down,
                                     stop_every=stop_every, url=target_url, sim_url=simulator_url, key=api_key,
                                     timeout=timeout))


@bench.command("voice")
@click.option("--renders", type=click.IntRange(5, 10_000), default=40, show_default=True)
@click.option("--concurrency", type=click.IntRange(1, 256), default=16, show_default=True)
@click.option("--workers", type=click.IntRange(1, 64), default=2, show_default=True, help="Synthesis processes.")
@click.option("--json", "as_json", is_flag=True, help="Accepted for symmetry: the output is always JSON.")
def bench_voice(renders: int, concurrency: int, workers: int, as_json: bool) -> None:
    """Speech pipeline: cached serve p99, new 25-word render p95, renders per second."""
    from gateway.bench import common, voice

    common.run(voice.bench_voice(renders=renders, concurrency=concurrency, workers=workers))


@bench.command("failover")
@click.option("--messages", type=click.IntRange(1, 1_000_000), default=20_000, show_default=True)
@click.option("--stop-after", type=click.FloatRange(0.1, 600), default=3.0, show_default=True,
              help="Seconds into the run when the first carrier goes down.")
@click.option("--window", type=click.IntRange(1, 1000), default=100, show_default=True,
              help="Each carrier's SMPP window (duplicates may reach it, no more).")
@click.option("--timeout", type=float, default=300, show_default=True, help="Seconds to wait for final states.")
@click.option("--json", "as_json", is_flag=True, help="Accepted for symmetry: the output is always JSON.")
def bench_failover(messages: int, stop_after: float, window: int, timeout: float, as_json: bool) -> None:
    """Two simulated carriers in a failover route; the first stops a few seconds in: delivered, lost (must be 0),
    duplicates at the simulators and the seconds traffic stalled."""
    from gateway.bench import common, failover

    common.run(failover.bench_failover(messages=messages, stop_after=stop_after, window=window, timeout=timeout))


@bench.command("soak")
@click.option("--minutes", type=click.FloatRange(0.05, 24 * 60), default=30, show_default=True)
@click.option("--rate", type=click.IntRange(1, 5000), default=500, show_default=True,
              help="Messages per second, kept exactly over time.")
@click.option("--window-minutes", type=click.FloatRange(0.01, 24 * 60), default=5, show_default=True,
              help="Latencies, memory and descriptors are reported per window of this length.")
@click.option("--requests-per-s", type=click.IntRange(1, 100), default=10, show_default=True,
              help="Batch requests a second that carry the --rate.")
@click.option("--inbound-rate", type=click.FloatRange(0, 1000), default=10, show_default=True,
              help="Inbound messages per second, injected through the simulator.")
@click.option("--callbacks", type=click.Choice(["all", "final"]), default="all", show_default=True,
              help="The status events each message's callback asks for.")
@click.option("--webhook-batch", type=click.IntRange(1, 100), default=1, show_default=True,
              help="The account's webhook_batch_size (events to a POST).")
@click.option("--timeout", type=float, default=120, show_default=True,
              help="Seconds to wait after the traffic for the last final events and inbound messages.")
@click.option("--json", "as_json", is_flag=True, help="Accepted for symmetry: the output is always JSON.")
def bench_soak(minutes: float, rate: int, window_minutes: float, requests_per_s: int, inbound_rate: float,
               callbacks: str, webhook_batch: int, timeout: float, as_json: bool) -> None:
    """Steady traffic for MINUTES against a gateway process of its own: does it stay flat?

    Sends go as POST /v1/messages/batch, --requests-per-s a second, each carrying the messages due since the last
    (token pacing: by t seconds in, exactly floor(RATE x t) were sent; 500/s at 10 requests/s is 50 to a request,
    333/s is 33 or 34), with status callbacks to a local receiver that checks signatures and counts each event once;
    inbound messages go through the simulator's POST /mo to a number forwarding them to the same receiver.
    Prints the gateway's resident memory (VmRSS) and open descriptors at the start, per window and at the end,
    row counts and database size at the start and end, p50/p99 per window (acceptance -> final event at the
    receiver; injection -> inbound at the receiver), sent, delivered, forwarded, lost (must be 0) and a flat
    verdict per series with its rule."""
    from gateway.bench import common, soak

    common.run(soak.bench_soak(minutes=minutes, rate=rate, window_minutes=window_minutes,
                               requests_per_s=requests_per_s, inbound_rate=inbound_rate, callbacks=callbacks,
                               webhook_batch=webhook_batch, timeout=timeout))
