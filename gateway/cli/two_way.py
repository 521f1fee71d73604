"""gatewayctl groups for two-way messaging: keywords, opt-out lists, webhook deliveries, the simulator."""

from __future__ import annotations

import sys
import urllib.parse
from pathlib import Path

import aiohttp
import click

from gateway.cli.context import Ctx, output_file, run_async

DELIVERY_COLUMNS = [("id", "ID"), ("kind", "KIND"), ("event_type", "EVENT"), ("status", "STATUS"),
                    ("attempts", "TRIES"), ("last_status_code", "LAST"), ("created_at", "CREATED")]


def _q(value: str) -> str:
    return urllib.parse.quote(value, safe="")


async def _number_account(obj: Ctx, number: str) -> int:
    data = await obj.call("GET", f"/admin/numbers/{_q(number)}")
    if data["account_id"] is None:
        raise click.ClickException(f"{number} is not leased to an account.")
    return data["account_id"]


@click.group()
def keywords() -> None:
    """Keywords of a number (HELP/STOP and the reserved words are always there)."""


@keywords.command("list")
@click.argument("number")
@click.pass_obj
def keywords_list(obj: Ctx, number: str) -> None:
    """List a number's keywords."""
    async def go() -> dict:
        account = await _number_account(obj, number)
        return await obj.call("GET", f"/admin/accounts/{account}/numbers/{_q(number)}/keywords")

    data = run_async(go())
    obj.emit(data, [("keyword", "KEYWORD"), ("action", "ACTION"), ("message", "MESSAGE")], data["keywords"])


@keywords.command("set")
@click.argument("number")
@click.argument("keyword")
@click.option("--action", type=click.Choice(["auto_response", "opt_out", "opt_in"]), required=True,
              help="What the keyword does.")
@click.option("--message", default=None, help="The reply (required for auto_response).")
@click.pass_obj
def keywords_set(obj: Ctx, number: str, keyword: str, action: str, message: str | None) -> None:
    """Add or change a keyword on a number (at most 30)."""
    async def go() -> dict:
        account = await _number_account(obj, number)
        body = {"action": action} | ({"message": message} if message is not None else {})
        return await obj.call("PUT", f"/admin/accounts/{account}/numbers/{_q(number)}/keywords/{_q(keyword)}",
                              body=body)

    obj.emit(run_async(go()))


@keywords.command("remove")
@click.argument("number")
@click.argument("keyword")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_obj
def keywords_remove(obj: Ctx, number: str, keyword: str, yes: bool) -> None:
    """Remove a custom keyword."""
    if not yes:
        click.confirm(f"Remove keyword {keyword.upper()} from {number}?", abort=True)

    async def go() -> dict:
        account = await _number_account(obj, number)
        return await obj.call("DELETE", f"/admin/accounts/{account}/numbers/{_q(number)}/keywords/{_q(keyword)}")

    obj.emit(run_async(go()))


@click.group()
def optouts() -> None:
    """Opt-out lists of an account."""


ACCOUNT = click.option("--account", "account", type=int, required=True, help="The account's id.")
LIST = click.option("--list", "list_name", default=None, help="The list (default: the account's default list).")


@optouts.command("list")
@ACCOUNT
@LIST
@click.option("--phone", default=None, help="Only this phone number.")
@click.option("--limit", type=click.IntRange(1, 500), default=50, show_default=True)
@click.option("--before", default=None, help="The cursor a previous page printed.")
@click.pass_obj
def optouts_list(obj: Ctx, account: int, list_name: str | None, phone: str | None, limit: int,
                 before: str | None) -> None:
    """List opted-out numbers, newest first (paged)."""
    params = {"limit": str(limit)} | {k: v for k, v in (("list", list_name), ("phone", phone),
                                                        ("before", before)) if v}
    data = run_async(obj.call("GET", f"/admin/accounts/{account}/opt-outs", params=params))
    obj.emit(data, [("phone", "PHONE"), ("list", "LIST"), ("source", "SOURCE"), ("created_at", "SINCE")],
             data["opt_outs"])
    if not obj.as_json and data["next"]:
        click.echo(f"more: --before {data['next']}")


@optouts.command("add")
@ACCOUNT
@LIST
@click.argument("phone")
@click.pass_obj
def optouts_add(obj: Ctx, account: int, list_name: str | None, phone: str) -> None:
    """Add a phone number to a list (what is queued to it is blocked)."""
    body = {"phone": phone} | ({"list": list_name} if list_name else {})
    obj.emit(run_async(obj.call("POST", f"/admin/accounts/{account}/opt-outs", body=body)))


@optouts.command("remove")
@ACCOUNT
@LIST
@click.argument("phone")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_obj
def optouts_remove(obj: Ctx, account: int, list_name: str | None, phone: str, yes: bool) -> None:
    """Take a phone number off a list: it will receive messages again."""
    if not yes:
        click.confirm(f"Let {phone} receive messages again?", abort=True)
    params = {"list": list_name} if list_name else None
    obj.emit(run_async(obj.call("DELETE", f"/admin/accounts/{account}/opt-outs/{_q(phone)}", params=params)))


@optouts.command("import")
@ACCOUNT
@LIST
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_obj
def optouts_import(obj: Ctx, account: int, list_name: str | None, file: Path) -> None:
    """Import a CSV (phone[,list]; a header row is optional). Bad rows are reported by line; good ones are kept."""
    data = obj.upload_csv(f"/admin/accounts/{account}/opt-outs/import", file,
                          params={"list": list_name} if list_name else None)
    obj.emit(data if obj.as_json else {k: v for k, v in data.items() if k != "errors"})
    if not obj.as_json:
        for e in data["errors"][:20]:
            click.echo(f"  line {e['line']}: {e['value']!r} rejected ({e['error']})")


@optouts.command("export")
@ACCOUNT
@LIST
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              callback=output_file)
@click.pass_obj
def optouts_export(obj: Ctx, account: int, list_name: str | None, output: Path) -> None:
    """Export a list (or all lists) as CSV."""
    async def go() -> str:
        async with aiohttp.ClientSession() as http:
            return await obj.send_text(http, "GET", f"/admin/accounts/{account}/opt-outs/export",
                                       params={"list": list_name} if list_name else None)

    text = run_async(go())
    lines = text.splitlines()
    with click.progressbar(lines, label="writing", file=sys.stderr) as bar, \
            output.open("w", newline="") as fh:
        for line in bar:
            fh.write(line + "\n")
    click.echo(f"{len(lines) - 1} opt-outs written to {output}")


@click.group()
def webhooks() -> None:
    """Webhook deliveries of an account: every attempt, and replays."""


@webhooks.command("list")
@ACCOUNT
@click.option("--status", type=click.Choice(["pending", "delivered", "failed"]), default=None)
@click.option("--limit", type=click.IntRange(1, 500), default=50, show_default=True)
@click.pass_obj
def webhooks_list(obj: Ctx, account: int, status: str | None, limit: int) -> None:
    """List deliveries, newest first."""
    params = {"limit": str(limit)} | ({"status": status} if status else {})
    data = run_async(obj.call("GET", f"/admin/accounts/{account}/webhooks/deliveries", params=params))
    obj.emit(data, DELIVERY_COLUMNS, data["deliveries"])


@webhooks.command("show")
@ACCOUNT
@click.argument("delivery_id")
@click.pass_obj
def webhooks_show(obj: Ctx, account: int, delivery_id: str) -> None:
    """A delivery with each attempt (time, response code)."""
    data = run_async(obj.call("GET", f"/admin/accounts/{account}/webhooks/deliveries/{_q(delivery_id)}"))
    if obj.as_json:
        obj.emit(data)
        return
    obj.emit({k: v for k, v in data.items() if k != "attempt_log"})
    obj.emit(data, [("at", "AT"), ("status_code", "CODE"), ("error", "ERROR"), ("duration_ms", "MS")],
             data["attempt_log"])


@webhooks.command("replay")
@ACCOUNT
@click.argument("delivery_id")
@click.pass_obj
def webhooks_replay(obj: Ctx, account: int, delivery_id: str) -> None:
    """Deliver again."""
    obj.emit(run_async(obj.call("POST", f"/admin/accounts/{account}/webhooks/deliveries/{_q(delivery_id)}/replay")))


@click.group()
def sim() -> None:
    """Drive the SMPP simulator through its control API."""


@sim.command("mo")
@click.option("--from", "source", required=True, help="The person's number (E.164).")
@click.option("--to", "destination", required=True, help="The leased number it is sent to.")
@click.option("--sim-url", envvar="GATEWAY_SIMULATOR_URL", default="http://127.0.0.1:2776", show_default=True,
              help="The simulator's control API.")
@click.argument("text")
@click.pass_obj
def sim_mo(obj: Ctx, source: str, destination: str, sim_url: str, text: str) -> None:
    """Inject a mobile-originated message (as if a person had sent TEXT)."""
    async def go() -> dict:
        try:
            async with aiohttp.ClientSession() as http:
                async with http.post(sim_url.rstrip("/") + "/mo",
                                     json={"from": source, "to": destination, "text": text}) as r:
                    data = await r.json()
                    if r.status >= 400:
                        raise click.ClickException(f"{data['error']['message']} ({data['error']['code']})")
                    return data
        except aiohttp.ClientConnectionError as exc:
            err = click.ClickException(f"Cannot reach the simulator at {sim_url}: {exc}")
            err.exit_code = 3
            raise err from None

    obj.emit(run_async(go()))
