"""gatewayctl: run the gateway and its simulator, migrate the database, and administer a running gateway.

Admin commands talk to the running gateway's HTTP admin API (--url / GATEWAY_URL, --token / GATEWAY_TOKEN;
without a token, the one the local gateway generated in its data folder is used).
"""

from __future__ import annotations

import click

from gateway.cli.accounts import accounts
from gateway.cli.bench import bench
from gateway.cli.context import Ctx
from gateway.cli.registry import inventory, numbers
from gateway.cli.routes import routes
from gateway.cli.serve import db, run, simulator
from gateway.cli.status import status
from gateway.cli.tendlc import brands, campaigns, registry
from gateway.cli.toll_free import toll_free
from gateway.cli.two_way import keywords, optouts, sim, webhooks
from gateway.cli.voice import voice


@click.group()
@click.option("--url", envvar="GATEWAY_URL", default="http://127.0.0.1:8080", show_default=True,
              help="The running gateway's base URL.")
@click.option("--token", envvar="GATEWAY_TOKEN", default=None,
              help="Operator token (default: the local gateway's data/operator_token).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
@click.option("--config", envvar="GATEWAY_CONFIG", default=None, help="Configuration file (TOML).")
@click.pass_context
def cli(ctx: click.Context, url: str, token: str | None, as_json: bool, config: str | None) -> None:
    """Operate the SMS and voice gateway."""
    ctx.obj = Ctx(url, token, as_json, config)


for command in (run, simulator, db, status, accounts, bench, inventory, numbers, brands, campaigns, registry, toll_free,
                routes, voice, keywords, optouts, webhooks, sim):
    cli.add_command(command)


def _set_json(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value:
        ctx.find_object(Ctx).as_json = True


def _json_anywhere(group: click.Group) -> None:
    """`--json` after the subcommand too (`gatewayctl accounts list --json`), not only before it."""
    for command in group.commands.values():
        if isinstance(command, click.Group):
            _json_anywhere(command)
        elif not any("--json" in p.opts for p in command.params):
            command.params.append(click.Option(["--json"], is_flag=True, expose_value=False, callback=_set_json,
                                               help="Print JSON instead of tables."))


_json_anywhere(cli)


def main() -> None:
    cli(prog_name="gatewayctl")

