"""gatewayctl bench throttle: the gateway's own pacing (an account's limit) and, with --carrier-limits, a 10DLC
campaign's carrier limit the simulator enforces."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp

from gateway.bench.common import BENCH_TOKEN, admin, final_states, recipients, send_batches, started


async def bench_throttle(*, seconds: float, url: str | None, sim_url: str | None, key: str | None,
                         rate_limits: dict[str, float] | None = None) -> dict[str, Any]:
    """Queue ``seconds`` worth of the account's limit at once; report what the simulator saw each second."""
    async with started(url=url, sim_url=sim_url, key=key, env={}) as target, aiohttp.ClientSession() as http:
        account = await (await http.get(target.url + "/v1/account",
                                        headers={"Authorization": f"Bearer {target.key}"})).json()
        limit = float(account["max_rate_per_s"])
        if rate_limits:
            async with http.post(target.sim_url + "/scenario", json={"rate_limits": rate_limits}) as resp:
                resp.raise_for_status()
        count = int(limit * seconds)
        numbers = recipients(count, start=int(time.time()) % 1000 * 10_000)
        ids, _, start, _ = await send_batches(http, target, numbers, 500, 2, "pace")
        rows = await final_states(http, target, len(ids), timeout=seconds * 3 + 60)
        async with http.get(target.sim_url + "/stats") as resp:
            sim = await resp.json()
    per_second = {int(k): v for k, v in sim["per_second"].items() if int(k) >= int(start)}
    full = sorted(per_second)[1:-1] or sorted(per_second)  # first and last seconds are partial
    mine = {m["id"] for m in rows if m["status"] in ("delivered", "undelivered", "failed", "expired")}
    return {
        "benchmark": "throttle", "seconds": seconds, "limit": limit, "offered": len(ids),
        "max_per_s": max(per_second.values()) if per_second else 0,
        "mean_per_s": round(sum(per_second[s] for s in full) / len(full), 2) if full else 0.0,
        "per_second": [per_second[s] for s in sorted(per_second)],
        "throttled": sim["stats"].get("throttled", 0), "lost": len(ids) - len(mine & set(ids)),
    }


async def bench_carrier_limits(*, seconds: float, trust_score: int, url: str | None, sim_url: str | None,
                               key: str | None) -> dict[str, Any]:
    """A 10DLC campaign at a trust score, AT&T recipients, the simulator enforcing AT&T's limit for that score:
    offer more than the limit and count ESME_RTHROTTLED answers and the rate reached."""
    from registry.limits import derive

    async with started(url=url, sim_url=sim_url, key=key, env={}) as target, aiohttp.ClientSession() as http:
        me = {"Authorization": f"Bearer {target.key}"}
        account = await (await http.get(target.url + "/v1/account", headers=me)).json()
        number = "+12145550100"
        inventory = f"number,type,country,capabilities\n{number},long_code,US,sms\n"
        async with http.post(target.url + "/admin/inventory/import", data=inventory,
                             headers={"Authorization": f"Bearer {BENCH_TOKEN}"}) as resp:
            resp.raise_for_status()
        await admin(http, target, "PATCH", f"/admin/accounts/{account['id']}", {"max_rate_per_s": 1000})
        await admin(http, target, "POST", "/admin/numbers/lease", {"account_id": account["id"], "type": "long_code"})
        brand = await admin(http, target, "POST", "/admin/brands", {
            "account_id": account["id"], "legal_name": "Bench Inc", "ein": "123456789",
            "entity_type": "PRIVATE_PROFIT", "vertical": "TECHNOLOGY", "website": "https://bench.example",
            "contact_email": "ops@bench.example", "contact_phone": "+12145550199"})
        # the registry simulator's identity check, then its reviewer gives the score asked for
        await admin(http, target, "POST", f"/admin/registry/simulator/brands/{brand['id']}/review",
                    {"identity_status": "VERIFIED", "score": trust_score})
        campaign = await admin(http, target, "POST", "/admin/campaigns", {
            "brand_id": brand["id"], "use_case": "ACCOUNT_NOTIFICATION", "description": "Benchmark traffic",
            "sample_messages": ["Your order {#var} has shipped today.", "Your code is {#var}, valid 10 minutes."],
            "opt_in_message": "x", "opt_out_message": "Reply STOP", "help_message": "Reply HELP"})
        await admin(http, target, "POST", f"/admin/campaigns/{campaign['id']}/share")
        for days in (3, 5):  # the DCA accepts it, then every carrier approves it
            await admin(http, target, "POST", "/admin/registry/advance", {"days": days})
        await admin(http, target, "POST", f"/admin/campaigns/{campaign['id']}/associate", {"number": number})
        await admin(http, target, "POST", "/admin/registry/advance", {"days": 7})
        shown = await admin(http, target, "GET", f"/admin/brands/{brand['id']}")
        if shown["trust_score"] != trust_score:
            raise RuntimeError(f"the brand's score is {shown['trust_score']}, not {trust_score}")
        att_per_s = derive(trust_score, "ACCOUNT_NOTIFICATION", "PRIVATE_PROFIT").att_per_minute / 60
        async with http.post(target.sim_url + "/scenario", json={"rate_limits": {"att": att_per_s},
                                                                 "carrier_prefixes": {"+1214": "att"}}) as resp:
            resp.raise_for_status()
        await asyncio.sleep(5.5)  # the gateway's caches of numbers and campaigns refresh every 5 s
        count = int(att_per_s * seconds)
        numbers = [f"+1214{2000000 + i:07d}" for i in range(count)]
        ids, _, start, _ = await send_batches(http, target, numbers, 500, 2, "carrier pace", source=number)
        rows = await final_states(http, target, len(ids), timeout=seconds * 3 + 60)
        async with http.get(target.sim_url + "/stats") as resp:
            sim = await resp.json()
    per_second = {int(k): v for k, v in sim["per_second"].items() if int(k) >= int(start)}
    full = sorted(per_second)[1:-1] or sorted(per_second)
    mean = sum(per_second[s] for s in full) / len(full) if full else 0.0
    delivered = sum(1 for m in rows if m["status"] == "delivered")
    return {"benchmark": "carrier_limits", "trust_score": trust_score, "att_limit_per_s": round(att_per_s, 2),
            "offered": len(ids), "delivered": delivered, "throttled": sim["stats"].get("throttled", 0),
            "max_per_s": max(per_second.values()) if per_second else 0, "mean_per_s": round(mean, 2),
            "share_of_allowed": round(mean / att_per_s, 3) if att_per_s else 0.0,
            "per_second": [per_second[s] for s in sorted(per_second)]}
