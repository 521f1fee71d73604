"""gatewayctl groups for the number registry and 10DLC: inventory, numbers, brands, campaigns, registry."""

from __future__ import annotations

import urllib.parse
from pathlib import Path

import click

from gateway.cli.context import Ctx, run_async
from registry import states

NUMBER_COLUMNS = [("number", "NUMBER"), ("type", "TYPE"), ("country", "CC"), ("capabilities", "CAPS"),
                  ("status", "STATUS"), ("account_id", "ACCOUNT"), ("campaign_id", "CAMPAIGN")]
BRAND_COLUMNS = [("id", "ID"), ("account_id", "ACCOUNT"), ("legal_name", "NAME"), ("status", "STATUS"),
                 ("identity_status", "IDENTITY"), ("trust_score", "SCORE")]
CAMPAIGN_COLUMNS = [("id", "ID"), ("brand_id", "BRAND"), ("use_case", "USE CASE"), ("status", "STATUS")]
HISTORY_COLUMNS = [("at", "AT"), ("from", "FROM"), ("to", "TO"), ("actor", "BY"), ("reason", "REASON")]


def _q(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def _show(obj: Ctx, data: dict) -> None:
    """A record, then its history."""
    if obj.as_json:
        obj.emit(data)
        return
    history = data.pop("history", [])
    limits = data.pop("limits", None)
    obj.emit(data)
    if limits:
        click.echo("limits:")
        click.echo(f"  AT&T: {limits['att_per_minute']:,.0f} SMS per minute for the campaign"
                   f" (class {limits['att_class']})")
        click.echo(f"  T-Mobile: {limits['tmobile_per_day']:,} segments per day for the brand"
                   f" ({limits['tmobile_tier']})")
        click.echo(f"  Verizon: {limits['verizon_per_minute']:,.0f} SMS per minute per number")
        if limits.get("brand_per_second"):
            click.echo(f"  sole proprietor: {limits['brand_per_second']:.0f}/s, {limits['brand_per_day']:,} a day")
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


@click.group()
def brands() -> None:
    """10DLC brands: register, review, vet, resubmit."""


@brands.command("register")
@click.option("--account", type=int, required=True)
@click.option("--legal-name", required=True)
@click.option("--ein", required=True, help="US employer identification number (9 digits).")
@click.option("--entity-type", required=True,
              type=click.Choice(states.ENTITY_TYPES))
@click.option("--vertical", required=True, type=click.Choice(states.VERTICALS),
              help="The Campaign Registry's industry.")
@click.option("--website", required=True, help="The brand's site: an http(s) URL.")
@click.option("--email", "contact_email", required=True)
@click.option("--phone", "contact_phone", default=None)
@click.option("--country", default="US", show_default=True)
@click.option("--draft", is_flag=True, help="Create without submitting it for review.")
@click.pass_obj
def brands_register(obj: Ctx, account: int, legal_name: str, ein: str, entity_type: str, vertical: str,
                    website: str, contact_email: str, contact_phone: str | None, country: str, draft: bool) -> None:
    """Register a brand (submitted for review unless --draft)."""
    body = {"account_id": account, "legal_name": legal_name, "ein": ein, "entity_type": entity_type,
            "vertical": vertical, "website": website, "contact_email": contact_email, "country": country,
            "submit": not draft} | ({"contact_phone": contact_phone} if contact_phone else {})
    obj.emit(run_async(obj.call("POST", "/admin/brands", body=body)), BRAND_COLUMNS)


@brands.command("list")
@click.pass_obj
def brands_list(obj: Ctx) -> None:
    """List brands."""
    data = run_async(obj.call("GET", "/admin/brands"))
    obj.emit(data, BRAND_COLUMNS, data["brands"])


@brands.command("show")
@click.argument("brand_id", type=int)
@click.pass_obj
def brands_show(obj: Ctx, brand_id: int) -> None:
    """A brand with its history."""
    _show(obj, run_async(obj.call("GET", f"/admin/brands/{brand_id}")))


@brands.command("review")
@click.argument("brand_id", type=int)
@click.option("--outcome", type=click.Choice(["verified", "unverified", "requires_updates"]), required=True)
@click.option("--trust-score", type=click.IntRange(0, 100), default=None)
@click.option("--reason", default=None, help="Required with requires_updates.")
@click.pass_obj
def brands_review(obj: Ctx, brand_id: int, outcome: str, trust_score: int | None, reason: str | None) -> None:
    """Act as the registry's reviewer for a submitted brand."""
    body = {"outcome": outcome} | ({"trust_score": trust_score} if trust_score is not None else {}) | (
        {"reason": reason} if reason else {})
    obj.emit(run_async(obj.call("POST", f"/admin/brands/{brand_id}/review", body=body)), BRAND_COLUMNS)


@brands.command("vet")
@click.argument("brand_id", type=int)
@click.option("--trust-score", type=click.IntRange(0, 100), required=True)
@click.pass_obj
def brands_vet(obj: Ctx, brand_id: int, trust_score: int) -> None:
    """Record a vetting: it can raise the trust score."""
    obj.emit(run_async(obj.call("POST", f"/admin/brands/{brand_id}/vet", body={"trust_score": trust_score})),
             BRAND_COLUMNS)


@brands.command("resubmit")
@click.argument("brand_id", type=int)
@click.pass_obj
def brands_resubmit(obj: Ctx, brand_id: int) -> None:
    """Submit a brand again after updates (or a draft for the first time)."""
    obj.emit(run_async(obj.call("POST", f"/admin/brands/{brand_id}/resubmit", body={})), BRAND_COLUMNS)


@click.group()
def campaigns() -> None:
    """10DLC campaigns: create, review, show limits, associate numbers."""


@campaigns.command("create")
@click.option("--brand", "brand_id", type=int, required=True)
@click.option("--use-case", required=True, help="2FA, ACCOUNT_NOTIFICATION, CUSTOMER_CARE, MARKETING, MIXED, "
                                                "LOW_VOLUME, ...")
@click.option("--description", required=True)
@click.option("--sample", "samples", multiple=True, required=True, help="2-5 sample messages, {#var} for variables.")
@click.option("--opt-in", "opt_in_message", required=True)
@click.option("--opt-out", "opt_out_message", required=True)
@click.option("--help-message", required=True)
@click.option("--embedded-links", is_flag=True)
@click.option("--number-pooling", is_flag=True)
@click.option("--age-gated", is_flag=True)
@click.pass_obj
def campaigns_create(obj: Ctx, brand_id: int, use_case: str, description: str, samples: tuple[str, ...],
                     opt_in_message: str, opt_out_message: str, help_message: str, embedded_links: bool,
                     number_pooling: bool, age_gated: bool) -> None:
    """Create a campaign for a verified brand (it is submitted for review)."""
    body = {"brand_id": brand_id, "use_case": use_case, "description": description,
            "sample_messages": list(samples), "opt_in_message": opt_in_message, "opt_out_message": opt_out_message,
            "help_message": help_message, "embedded_links": embedded_links, "number_pooling": number_pooling,
            "age_gated": age_gated}
    obj.emit(run_async(obj.call("POST", "/admin/campaigns", body=body)), CAMPAIGN_COLUMNS)


@campaigns.command("list")
@click.pass_obj
def campaigns_list(obj: Ctx) -> None:
    """List campaigns."""
    data = run_async(obj.call("GET", "/admin/campaigns"))
    obj.emit(data, CAMPAIGN_COLUMNS, data["campaigns"])


@campaigns.command("show")
@click.argument("campaign_id", type=int)
@click.pass_obj
def campaigns_show(obj: Ctx, campaign_id: int) -> None:
    """A campaign with its limits per carrier (from the brand's trust score) and history."""
    _show(obj, run_async(obj.call("GET", f"/admin/campaigns/{campaign_id}")))


@campaigns.command("review")
@click.argument("campaign_id", type=int)
@click.option("--outcome", type=click.Choice(["approved", "rejected", "requires_updates"]), required=True)
@click.option("--reason", default=None)
@click.pass_obj
def campaigns_review(obj: Ctx, campaign_id: int, outcome: str, reason: str | None) -> None:
    """Act as the registry's reviewer for a submitted campaign."""
    body = {"outcome": outcome} | ({"reason": reason} if reason else {})
    obj.emit(run_async(obj.call("POST", f"/admin/campaigns/{campaign_id}/review", body=body)), CAMPAIGN_COLUMNS)


@campaigns.command("associate")
@click.argument("campaign_id", type=int)
@click.argument("number")
@click.pass_obj
def campaigns_associate(obj: Ctx, campaign_id: int, number: str) -> None:
    """Put a number into a campaign: associating until the registry has processed it (14 business days)."""
    obj.emit(run_async(obj.call("POST", f"/admin/campaigns/{campaign_id}/associate", body={"number": number})),
             NUMBER_COLUMNS)


@campaigns.command("disassociate")
@click.argument("campaign_id", type=int)
@click.argument("number")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_obj
def campaigns_disassociate(obj: Ctx, campaign_id: int, number: str, yes: bool) -> None:
    """Take a number out of a campaign (it becomes an unregistered long code: voice only to US numbers)."""
    if not yes:
        click.confirm(f"Take {number} out of campaign {campaign_id}?", abort=True)
    obj.emit(run_async(obj.call("POST", f"/admin/campaigns/{campaign_id}/disassociate", body={"number": number})),
             NUMBER_COLUMNS)


@click.group()
def registry() -> None:
    """The local 10DLC registry stand-in."""


@registry.command("advance")
@click.option("--days", type=click.IntRange(0, 3650), required=True)
@click.pass_obj
def registry_advance(obj: Ctx, days: int) -> None:
    """Advance the registry's clock; pending (dis)associations that come due complete."""
    obj.emit(run_async(obj.call("POST", "/admin/registry/advance", body={"days": days})))
