"""gatewayctl groups for US 10DLC as a Campaign Service Provider: brands, campaigns (and the numbers they hold),
and the registry itself (its state, the events received, reconciliation, and the registry simulator: its clock,
its reviewers, its faults, or the simulator run standalone)."""

from __future__ import annotations

import click

from gateway.cli.context import Ctx, run_async
from gateway.cli.registry import HISTORY_COLUMNS
from registry import states

BRAND_COLUMNS = [("id", "ID"), ("account_id", "ACCOUNT"), ("legal_name", "NAME"), ("status", "STATUS"),
                 ("identity_status", "IDENTITY"), ("trust_score", "SCORE"), ("vetting_status", "VETTING"),
                 ("registry_id", "REGISTRY ID")]
CAMPAIGN_COLUMNS = [("id", "ID"), ("brand_id", "BRAND"), ("use_case", "USE CASE"), ("status", "STATUS"),
                    ("sharing_status", "SHARING"), ("registry_id", "REGISTRY ID")]
ORDER_COLUMNS = [("number", "NUMBER"), ("status", "STATUS"), ("reason", "REASON")]
EVENT_COLUMNS = [("received_at", "RECEIVED"), ("type", "TYPE"), ("subject", "ABOUT"), ("outcome", "OUTCOME"),
                 ("reason", "WHY")]


def _pending(data: dict) -> None:
    for p in data.get("pending") or []:
        click.echo(f"pending: {p['operation']} (request {p['request_id']}, {p['attempts']} attempt(s)): "
                   f"{p['error']}; the reconciliation sends it again")


def _emit(obj: Ctx, data: dict, columns: list[tuple[str, str]]) -> None:
    obj.emit(data, columns)
    if not obj.as_json:
        _pending(data)


def _show(obj: Ctx, data: dict) -> None:
    """A brand or campaign: its fields, its limits and carriers' reviews, its orders, what is pending, its history."""
    if obj.as_json:
        obj.emit(data)
        return
    history, limits = data.pop("history", []), data.pop("limits", None)
    operations, blocked = data.pop("operations", None), data.pop("blocked", None)
    orders, pending = data.pop("orders", None), data.pop("pending", None)
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
    if operations:
        click.echo("carriers: " + ", ".join(f"{mno} {op['status']}" for mno, op in operations.items()))
    if blocked:
        click.echo("no traffic to: " + ", ".join(f"{carrier} ({why})" for carrier, why in blocked.items()))
    for order in orders or []:
        click.echo(f"order {order['id']} ({order['kind']}, {order['status']}, {order['registry_id'] or '-'}):")
        obj.emit(order, ORDER_COLUMNS, order["numbers"])
    _pending({"pending": pending})
    click.echo("history:")
    obj.emit(data, HISTORY_COLUMNS, history)


# --- brands ---------------------------------------------------------------------------------------------------------
@click.group()
def brands() -> None:
    """10DLC brands, registered with the registry: register, vet, update, revet, feedback, delete."""


@brands.command("register")
@click.option("--account", type=int, required=True)
@click.option("--legal-name", required=True)
@click.option("--ein", required=True, help="US employer identification number (9 digits).")
@click.option("--entity-type", required=True, type=click.Choice(states.ENTITY_TYPES))
@click.option("--vertical", required=True, type=click.Choice(states.VERTICALS),
              help="The Campaign Registry's industry.")
@click.option("--website", required=True, help="The brand's site: an http(s) URL.")
@click.option("--email", "contact_email", required=True)
@click.option("--phone", "contact_phone", required=True, help="The brand's support phone number.")
@click.option("--street", default=None)
@click.option("--city", default=None)
@click.option("--state", default=None)
@click.option("--postal-code", default=None)
@click.option("--country", default="US", show_default=True)
@click.option("--relationship", type=click.Choice(states.RELATIONSHIPS), default=None,
              help="How well the CSP knows the brand (default BASIC_ACCOUNT).")
@click.pass_obj
def brands_register(obj: Ctx, account: int, **fields: str | None) -> None:
    """Register a brand with the registry; its identity check's result (and score) comes as an event."""
    body = {"account_id": account} | {k: v for k, v in fields.items() if v is not None}
    _emit(obj, run_async(obj.call("POST", "/admin/brands", body=body)), BRAND_COLUMNS)


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
    """A brand with its history (the registry's events and every call made to it)."""
    _show(obj, run_async(obj.call("GET", f"/admin/brands/{brand_id}")))


@brands.command("update")
@click.argument("brand_id", type=int)
@click.option("--legal-name", default=None)
@click.option("--ein", default=None)
@click.option("--entity-type", type=click.Choice(states.ENTITY_TYPES), default=None)
@click.option("--vertical", type=click.Choice(states.VERTICALS), default=None)
@click.option("--website", default=None)
@click.option("--email", "contact_email", default=None)
@click.option("--phone", "contact_phone", default=None)
@click.option("--street", default=None)
@click.option("--city", default=None)
@click.option("--state", default=None)
@click.option("--postal-code", default=None)
@click.pass_obj
def brands_update(obj: Ctx, brand_id: int, **fields: str | None) -> None:
    """Change a brand's fields at the registry (its identity is checked again)."""
    body = {k: v for k, v in fields.items() if v is not None}
    _emit(obj, run_async(obj.call("PATCH", f"/admin/brands/{brand_id}", body=body)), BRAND_COLUMNS)


@brands.command("vet")
@click.argument("brand_id", type=int)
@click.option("--evp", "evp_id", default="AEGIS", show_default=True, help="The external vetting provider.")
@click.option("--class", "vetting_class", default="STANDARD", show_default=True)
@click.pass_obj
def brands_vet(obj: Ctx, brand_id: int, evp_id: str, vetting_class: str) -> None:
    """Order external vetting of a verified brand; its result (and a higher score) comes as events."""
    _emit(obj, run_async(obj.call("POST", f"/admin/brands/{brand_id}/vet",
                                  body={"evp_id": evp_id, "vetting_class": vetting_class})), BRAND_COLUMNS)


@brands.command("revet")
@click.argument("brand_id", type=int)
@click.pass_obj
def brands_revet(obj: Ctx, brand_id: int) -> None:
    """Have the registry check the brand's identity again (after fixing what its feedback named)."""
    _emit(obj, run_async(obj.call("POST", f"/admin/brands/{brand_id}/revet")), BRAND_COLUMNS)


@brands.command("feedback")
@click.argument("brand_id", type=int)
@click.pass_obj
def brands_feedback(obj: Ctx, brand_id: int) -> None:
    """What the registry says is wrong with the brand's identity (nothing once it is verified)."""
    data = run_async(obj.call("GET", f"/admin/brands/{brand_id}/feedback"))
    if obj.as_json:
        obj.emit(data)
        return
    if not data["categories"]:
        click.echo("no feedback: nothing to fix")
    for c in data["categories"]:
        click.echo(f"{c.get('id')}: {c.get('displayName')}: {c.get('description')}"
                   + (f" (fields: {', '.join(c['fields'])})" if c.get("fields") else ""))


@brands.command("delete")
@click.argument("brand_id", type=int)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_obj
def brands_delete(obj: Ctx, brand_id: int, yes: bool) -> None:
    """Delete a brand at the registry (refused while it has live campaigns)."""
    if not yes:
        click.confirm(f"Delete brand {brand_id} at the registry?", abort=True)
    _emit(obj, run_async(obj.call("DELETE", f"/admin/brands/{brand_id}")), BRAND_COLUMNS)


# --- campaigns ------------------------------------------------------------------------------------------------------
@click.group()
def campaigns() -> None:
    """10DLC campaigns: create, share with the DCA, show carriers' reviews and limits, associate numbers, renew,
    deactivate."""


@campaigns.command("create")
@click.option("--brand", "brand_id", type=int, required=True)
@click.option("--use-case", required=True, help="2FA, ACCOUNT_NOTIFICATION, CUSTOMER_CARE, MARKETING, MIXED, "
                                                "LOW_VOLUME, ...")
@click.option("--description", required=True)
@click.option("--sample", "samples", multiple=True, required=True, help="2-5 sample messages, {#var} for variables.")
@click.option("--opt-in", "opt_in_message", required=True, help="How people opt in (the message flow).")
@click.option("--opt-out", "opt_out_message", required=True)
@click.option("--help-message", required=True)
@click.option("--embedded-links", is_flag=True)
@click.option("--number-pooling", is_flag=True)
@click.option("--age-gated", is_flag=True)
@click.option("--no-auto-renewal", is_flag=True, help="Let it expire at the end of its term instead.")
@click.pass_obj
def campaigns_create(obj: Ctx, brand_id: int, use_case: str, description: str, samples: tuple[str, ...],
                     opt_in_message: str, opt_out_message: str, help_message: str, embedded_links: bool,
                     number_pooling: bool, age_gated: bool, no_auto_renewal: bool) -> None:
    """Create a campaign at the registry for a brand the registry verified."""
    body = {"brand_id": brand_id, "use_case": use_case, "description": description,
            "sample_messages": list(samples), "opt_in_message": opt_in_message, "opt_out_message": opt_out_message,
            "help_message": help_message, "embedded_links": embedded_links, "number_pooling": number_pooling,
            "age_gated": age_gated, "auto_renewal": not no_auto_renewal}
    _emit(obj, run_async(obj.call("POST", "/admin/campaigns", body=body)), CAMPAIGN_COLUMNS)


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
    """A campaign: its limits per carrier (from the brand's trust score), each carrier's review, the carriers it
    may not reach now, its number orders and its history."""
    _show(obj, run_async(obj.call("GET", f"/admin/campaigns/{campaign_id}")))


@campaigns.command("share")
@click.argument("campaign_id", type=int)
@click.option("--cnp", "cnp_id", default=None, help="The DCA's id (default: [registry] cnp_id).")
@click.pass_obj
def campaigns_share(obj: Ctx, campaign_id: int, cnp_id: str | None) -> None:
    """Share the campaign with the DCA; its answer, then each carrier's review, come as events."""
    body = {"cnp_id": cnp_id} if cnp_id else None
    _emit(obj, run_async(obj.call("POST", f"/admin/campaigns/{campaign_id}/share", body=body)), CAMPAIGN_COLUMNS)


@campaigns.command("renew")
@click.argument("campaign_id", type=int)
@click.pass_obj
def campaigns_renew(obj: Ctx, campaign_id: int) -> None:
    """Renew the campaign for another term."""
    _emit(obj, run_async(obj.call("POST", f"/admin/campaigns/{campaign_id}/renew")), CAMPAIGN_COLUMNS)


@campaigns.command("deactivate")
@click.argument("campaign_id", type=int)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_obj
def campaigns_deactivate(obj: Ctx, campaign_id: int, yes: bool) -> None:
    """Deactivate the campaign for good: its numbers carry no more 10DLC traffic."""
    if not yes:
        click.confirm(f"Deactivate campaign {campaign_id} for good?", abort=True)
    _emit(obj, run_async(obj.call("POST", f"/admin/campaigns/{campaign_id}/deactivate")), CAMPAIGN_COLUMNS)


def _order(obj: Ctx, data: dict) -> None:
    if obj.as_json:
        obj.emit(data)
        return
    order = data["order"]
    click.echo(f"order {order['id']}: {order['kind']} {order['status']} ({order['registry_id'] or 'not placed yet'})")
    obj.emit(order, ORDER_COLUMNS, order["numbers"])
    _pending(data)


@campaigns.command("associate")
@click.argument("campaign_id", type=int)
@click.argument("numbers", nargs=-1, required=True)
@click.pass_obj
def campaigns_associate(obj: Ctx, campaign_id: int, numbers: tuple[str, ...]) -> None:
    """Associate numbers with a campaign the DCA accepted, through an order: associating until the DCA
    completes it (business days on the registry's clock)."""
    _order(obj, run_async(obj.call("POST", f"/admin/campaigns/{campaign_id}/associate",
                                   body={"numbers": list(numbers)})))


@campaigns.command("disassociate")
@click.argument("campaign_id", type=int)
@click.argument("number")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_obj
def campaigns_disassociate(obj: Ctx, campaign_id: int, number: str, yes: bool) -> None:
    """Take a number out of a campaign (it becomes an unregistered long code: voice only to US numbers)."""
    if not yes:
        click.confirm(f"Take {number} out of campaign {campaign_id}?", abort=True)
    _order(obj, run_async(obj.call("POST", f"/admin/campaigns/{campaign_id}/disassociate", body={"number": number})))


# --- the registry ---------------------------------------------------------------------------------------------------
@click.group()
def registry() -> None:
    """The 10DLC registry the gateway calls as a CSP: its state, events, reconciliation, and the simulator."""


@registry.command("status")
@click.pass_obj
def registry_status(obj: Ctx) -> None:
    """Which registry, whether it posts events to us, the requests pending, the events received."""
    obj.emit(run_async(obj.call("GET", "/admin/registry")))


@registry.command("events")
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@click.pass_obj
def registry_events(obj: Ctx, limit: int) -> None:
    """The events the registry sent, newest first, with what each changed (or why nothing)."""
    data = run_async(obj.call("GET", "/admin/registry/events", params={"limit": str(limit)}))
    obj.emit(data, EVENT_COLUMNS, data["events"])


@registry.command("reconcile")
@click.option("--full", is_flag=True, help="Ask about every live brand and campaign, not only those waiting.")
@click.pass_obj
def registry_reconcile(obj: Ctx, full: bool) -> None:
    """Send the pending requests now and ask the registry about what waits for its word."""
    obj.emit(run_async(obj.call("POST", "/admin/registry/reconcile", body={"full": full})))


@registry.command("advance")
@click.option("--days", type=click.IntRange(0, 3650), required=True)
@click.pass_obj
def registry_advance(obj: Ctx, days: int) -> None:
    """Advance the registry simulator's clock: vettings, the DCA's answers, carriers' reviews and number orders
    that come due are done, and the gateway's states follow."""
    data = run_async(obj.call("POST", "/admin/registry/advance", body={"days": days}))
    obj.emit(data if obj.as_json else {"registry time": (data["clock"] or {}).get("now"),
                                       "changed": data["reconciled"]["changed"]})


@registry.group("simulator")
def simulator() -> None:
    """The registry simulator: run it standalone, or act as its reviewers and inject faults (through the
    gateway)."""


@simulator.command("review-brand")
@click.argument("brand_id", type=int)
@click.option("--identity-status", type=click.Choice(states.IDENTITY_STATUSES), required=True)
@click.option("--score", type=click.IntRange(0, 100), default=None)
@click.pass_obj
def simulator_review_brand(obj: Ctx, brand_id: int, identity_status: str, score: int | None) -> None:
    """Act as the registry's identity check: give the brand an identity status and score (sent as an event)."""
    body = {"identity_status": identity_status} | ({"score": score} if score is not None else {})
    obj.emit(run_async(obj.call("POST", f"/admin/registry/simulator/brands/{brand_id}/review", body=body)))


@simulator.command("review-campaign")
@click.argument("campaign_id", type=int)
@click.option("--mno", type=click.Choice(states.MNOS), required=True, help="The carrier reviewing it.")
@click.option("--status", type=click.Choice(["APPROVED", "REJECTED", "SUSPENDED", "UNSUSPENDED"]), required=True)
@click.option("--description", default="", help="Why.")
@click.pass_obj
def simulator_review_campaign(obj: Ctx, campaign_id: int, mno: str, status: str, description: str) -> None:
    """Act as a carrier's reviewer of a campaign (approve, reject, suspend, unsuspend: sent as an event)."""
    obj.emit(run_async(obj.call("POST", f"/admin/registry/simulator/campaigns/{campaign_id}/review",
                                body={"mno": mno, "status": status, "description": description})))


@simulator.command("faults")
@click.option("--http-5xx-rate", type=click.FloatRange(0, 1), default=None, help="Share of API calls answered 503.")
@click.option("--http-5xx-next", type=click.IntRange(0), default=None, help="The next N API calls answer 503.")
@click.option("--delay-ms", type=click.IntRange(0), default=None, help="Each API call answers this much later.")
@click.option("--webhook-duplicate-rate", type=click.FloatRange(0, 1), default=None,
              help="Share of events delivered twice.")
@click.option("--webhook-reorder/--no-webhook-reorder", default=None, help="Hold events, send them newest first.")
@click.option("--webhook-drop-next", type=click.IntRange(0), default=None, help="The next N events are never sent.")
@click.option("--seed", type=int, default=None)
@click.pass_obj
def simulator_faults(obj: Ctx, **faults: object) -> None:
    """Inject faults into the registry simulator (only those given change); prints them all."""
    body = {k: v for k, v in faults.items() if v is not None}
    obj.emit(run_async(obj.call("POST", "/admin/registry/simulator/faults", body=body)))


@simulator.command("redeliver")
@click.pass_obj
def simulator_redeliver(obj: Ctx) -> None:
    """Have the simulator send every event again (the gateway ignores those it has)."""
    obj.emit(run_async(obj.call("POST", "/admin/registry/simulator/redeliver")))


@simulator.command("serve")
@click.option("--host", default=None, help="Address to listen on (default: [registry] simulator_host).")
@click.option("--port", type=int, default=None, help="Its port (default: [registry] simulator_port).")
@click.option("--api-key", envvar="GATEWAY_REGISTRY_API_KEY", required=True,
              help="The CSP API key it accepts (GATEWAY_REGISTRY_API_KEY).")
@click.option("--api-secret", envvar="GATEWAY_REGISTRY_API_SECRET", required=True,
              help="Its secret (GATEWAY_REGISTRY_API_SECRET).")
@click.option("--snapshot", default=None, help="A JSON file that keeps its state across restarts.")
@click.pass_obj
def simulator_serve(obj: Ctx, host: str | None, port: int | None, api_key: str, api_secret: str,
                    snapshot: str | None) -> None:
    """Run the registry simulator standalone; point a gateway at it with [registry] mode = "remote" and
    base_url = its URL."""
    from gateway.cli.serve import serve_until_stopped
    from gateway.cli.server import serve_registry_simulator

    cfg = obj.settings().registry
    serve_until_stopped(serve_registry_simulator(host or cfg.simulator_host,
                                                 cfg.simulator_port if port is None else port, api_key, api_secret,
                                                 snapshot))

