"""gatewayctl accounts: customer accounts and their API keys."""

from __future__ import annotations

from typing import Any

import click

from gateway.cli.context import Ctx, run_async

ACCOUNT_COLUMNS = [("id", "ID"), ("name", "NAME"), ("status", "STATUS"), ("max_rate_per_s", "RATE/S")]


@click.group()
def accounts() -> None:
    """Customer accounts and their API keys."""


@accounts.command("create")
@click.argument("name")
@click.option("--rate", type=int, default=None, help="Messages per second for the account (default 20).")
@click.pass_obj
def accounts_create(obj: Ctx, name: str, rate: int | None) -> None:
    """Create an account and print its API key (shown once)."""
    body: dict[str, Any] = {"name": name}
    if rate is not None:
        body["max_rate_per_s"] = rate
    data = run_async(obj.call("POST", "/admin/accounts", body=body))
    if obj.as_json:
        obj.emit(data)
    else:
        click.echo(f"Account {data['id']} ({data['name']}) created.")
        click.echo(f"API key: {data['api_key']}")


@accounts.command("list")
@click.pass_obj
def accounts_list(obj: Ctx) -> None:
    """List accounts."""
    data = run_async(obj.call("GET", "/admin/accounts"))
    obj.emit(data, ACCOUNT_COLUMNS, data["accounts"])
