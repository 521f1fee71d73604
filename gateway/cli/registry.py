"""gatewayctl groups for the number inventory and the numbers leased (10DLC registration: gateway.cli.tendlc)."""

from __future__ import annotations

import urllib.parse
from pathlib import Path

import click

from gateway.cli.context import Ctx, run_async

NUMBER_COLUMNS = [("number", "NUMBER"), ("type", "TYPE"), ("country", "CC"), ("capabilities", "CAPS"),
                  ("status", "STATUS"), ("account_id", "ACCOUNT"), ("campaign_id", "CAMPAIGN")]
HISTORY_COLUMNS = [("at", "AT"), ("from", "FROM"), ("to", "TO"), ("actor", "BY"), ("reason", "REASON")]


def _q(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def _show(obj: Ctx, data: dict) -> None:
    """A record, then its history."""
    if obj.as_json:
        obj.emit(data)
        return
    history = data.pop("history", [])
    obj.emit(data)
    click.echo("history:")
    obj.emit(data, HISTORY_COLUMNS, history)


@click.group()
def inventory() -> None:
    """The numbers the operator holds from carriers."""


@inventory.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_obj
def inventory_import(obj: Ctx, file: Path) -> None:
    """Import FILE.csv: number,type,country,capabilities,carrier,monthly_price. Bad rows are reported by line; the
    good ones are kept."""
    data = obj.upload_csv("/admin/inventory/import", file)
    obj.emit(data if obj.as_json else {k: v for k, v in data.items() if k != "errors"})
    if not obj.as_json:
        for e in data["errors"][:50]:
            click.echo(f"  line {e['line']}: {e['message']} ({e['error']})")


@click.group()
def numbers() -> None:
    """Leased numbers: lease, list, show, update, activate, release."""


@numbers.command("lease")
@click.option("--account", type=int, required=True, help="The account's id.")
@click.option("--type", "kind", type=click.Choice(["short_code", "long_code", "toll_free", "ten_dlc"]), required=True)
@click.option("--country", default="US", show_default=True)
@click.option("--capabilities", default="sms", show_default=True, help="sms, voice or sms,voice")
@click.pass_obj
def numbers_lease(obj: Ctx, account: int, kind: str, country: str, capabilities: str) -> None:
    """Lease a free number of that kind to an account (a short code starts pending)."""
    data = run_async(obj.call("POST", "/admin/numbers/lease", body={"account_id": account, "type": kind,
                                                                    "country": country, "capabilities": capabilities}))
    obj.emit(data, NUMBER_COLUMNS)


@numbers.command("list")
@click.option("--account", type=int, default=None)
@click.option("--free", is_flag=True, help="Only numbers not leased.")
@click.pass_obj
def numbers_list(obj: Ctx, account: int | None, free: bool) -> None:
    """List numbers."""
    params = ({"account": str(account)} if account else {}) | ({"free": "true"} if free else {})
    data = run_async(obj.call("GET", "/admin/numbers", params=params))
    obj.emit(data, NUMBER_COLUMNS, data["numbers"])


@numbers.command("show")
@click.argument("number")
@click.pass_obj
def numbers_show(obj: Ctx, number: str) -> None:
    """A number with its history."""
    _show(obj, run_async(obj.call("GET", f"/admin/numbers/{_q(number)}/registry")))


@numbers.command("update")
@click.argument("number")
@click.option("--two-way/--no-two-way", default=None)
@click.option("--webhook", default=None, help="Where two-way messages are forwarded.")
@click.option("--message-type", type=click.Choice(["transactional", "promotional"]), default=None)
@click.option("--opt-out-list", default=None)
@click.option("--protect/--no-protect", default=None, help="Deletion protection.")
@click.pass_obj
def numbers_update(obj: Ctx, number: str, two_way: bool | None, webhook: str | None, message_type: str | None,
                   opt_out_list: str | None, protect: bool | None) -> None:
    """Change a number's settings."""
    body = {k: v for k, v in {"two_way_enabled": two_way, "two_way_webhook_url": webhook,
                              "message_type": message_type, "opt_out_list": opt_out_list,
                              "deletion_protection": protect}.items() if v is not None}
    obj.emit(run_async(obj.call("PATCH", f"/admin/numbers/{_q(number)}", body=body)), NUMBER_COLUMNS)


@numbers.command("activate")
@click.argument("number")
@click.pass_obj
def numbers_activate(obj: Ctx, number: str) -> None:
    """Activate a pending short code."""
    obj.emit(run_async(obj.call("POST", f"/admin/numbers/{_q(number)}/activate")), NUMBER_COLUMNS)


@numbers.command("release")
@click.argument("number")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_obj
def numbers_release(obj: Ctx, number: str, yes: bool) -> None:
    """Release a number back to the carrier (refused while deletion protection is on)."""
    if not yes:
        click.confirm(f"Release {number}? Its account loses it.", abort=True)
    obj.emit(run_async(obj.call("POST", f"/admin/numbers/{_q(number)}/release")), NUMBER_COLUMNS)
