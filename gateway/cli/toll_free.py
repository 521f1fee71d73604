"""gatewayctl toll-free: toll-free verification requests as the operator reviews them (list, show, review, verify,
reject) and submits them for an account."""

from __future__ import annotations

import json
from pathlib import Path

import click

from gateway.cli.context import Ctx, run_async, utf8_text
from registry import toll_free as rules

COLUMNS = [("id", "ID"), ("account_id", "ACCOUNT"), ("business_name", "BUSINESS"), ("numbers", "NUMBERS"),
           ("status", "STATUS"), ("rejection_reason", "REASON")]
HISTORY = [("at", "AT"), ("from", "FROM"), ("to", "TO"), ("actor", "BY"), ("reason", "REASON")]


@click.group("toll-free")
def toll_free() -> None:
    """Toll-free verification: carriers block SMS from toll-free numbers until it is verified. Review requests
    (review, verify, reject), list and show them, submit one for an account."""


@toll_free.command("list")
@click.option("--status", type=click.Choice(rules.STATUSES), default=None)
@click.option("--account", type=int, default=None, help="Of this account only.")
@click.pass_obj
def list_requests(obj: Ctx, status: str | None, account: int | None) -> None:
    """List requests, oldest first (--status submitted: those waiting for a reviewer)."""
    params = ({"status": status} if status else {}) | ({"account": str(account)} if account else {})
    data = run_async(obj.call("GET", "/admin/toll-free-verifications", params=params))
    obj.emit(data, COLUMNS, data["toll_free_verifications"])


def _show(obj: Ctx, data: dict) -> None:
    if obj.as_json:
        obj.emit(data)
        return
    history = data.pop("history", [])
    address, contact = data.pop("address"), data.pop("contact")
    data["address"] = ", ".join(v for v in (address["street"], address["street2"], address["city"],
                                            f"{address['region']} {address['postal_code']}", address["country"]) if v)
    data["contact"] = f"{contact['first_name']} {contact['last_name']} <{contact['email']}> {contact['phone']}"
    obj.emit({k: " | ".join(v) if isinstance(v, list) else v for k, v in data.items()})
    if history:
        click.echo("history:")
        obj.emit(data, HISTORY, history)


@toll_free.command("show")
@click.argument("request_id", type=int)
@click.pass_obj
def show(obj: Ctx, request_id: int) -> None:
    """A request: the business, its use case and opt-in, its numbers and its history."""
    _show(obj, run_async(obj.call("GET", f"/admin/toll-free-verifications/{request_id}")))


@toll_free.command("submit")
@click.option("--account", type=int, required=True, help="The account whose numbers they are.")
@click.option("--file", "file", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True,
              help="The request as JSON, as POST /v1/toll-free-verifications takes it "
                   "(examples/toll_free_verification.json).")
@click.option("--number", "numbers", multiple=True, help="A toll-free number of the account (instead of the file's).")
@click.pass_obj
def submit(obj: Ctx, account: int, file: Path, numbers: tuple[str, ...]) -> None:
    """Submit a request for an account's toll-free numbers, as the account would."""
    try:
        body = json.loads(utf8_text(file, file.read_bytes(), advice="save it as UTF-8 JSON", param_hint="--file"))
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"{file} is not JSON (line {exc.lineno}): {exc.msg}.", param_hint="--file") from None
    if not isinstance(body, dict):
        raise click.BadParameter(f"{file} must hold a JSON object.", param_hint="--file")
    if numbers:
        body["numbers"] = list(numbers)
    data = run_async(obj.call("POST", f"/admin/accounts/{account}/toll-free-verifications", body=body))
    obj.emit(data, COLUMNS)


def _review(obj: Ctx, request_id: int, action: str, body: dict) -> None:
    data = run_async(obj.call("POST", f"/admin/toll-free-verifications/{request_id}/{action}", body=body))
    obj.emit(data, COLUMNS)


@toll_free.command("review")
@click.argument("request_id", type=int)
@click.pass_obj
def review(obj: Ctx, request_id: int) -> None:
    """Start reviewing a submitted request (in_review)."""
    _review(obj, request_id, "start-review", {})


@toll_free.command("verify")
@click.argument("request_id", type=int)
@click.pass_obj
def verify(obj: Ctx, request_id: int) -> None:
    """Verify a request in review: its numbers may send SMS."""
    _review(obj, request_id, "verify", {})


@toll_free.command("reject")
@click.argument("request_id", type=int)
@click.option("--reason", required=True, help="What the customer must fix before resubmitting.")
@click.pass_obj
def reject(obj: Ctx, request_id: int, reason: str) -> None:
    """Reject a request in review, with the reason the customer reads."""
    _review(obj, request_id, "reject", {"reason": reason})
