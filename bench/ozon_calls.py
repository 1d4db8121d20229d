"""Scenario 5: Ozon calls per shipped order. One order per flow goes the whole way through `ozonbot run`
(push → alert → Packed → label → waybill → tracking/delivering) while the sandbox records every call."""

from __future__ import annotations

from collections import Counter

from bench.harness import Database, bench_settings, chat_of, running_service, seed_sellers, wait_until
from bench.options import Options
from bench.report import Goal, Result
from bench.sandbox_proc import sandbox_process
from sandbox.telegram import FakeBotAPI
from services.storage import db

USER = chat_of(0)
WAYBILL = "SF1402938475612"
GET, SHIP = "/v3/posting/fbs/get", "/v4/posting/fbs/ship"
LABEL_CREATE, LABEL_GET = "/v3/posting/fbs/package-label/create", "/v2/posting/fbs/package-label/get"
TRACKING, DELIVERING = "/v2/fbs/posting/tracking-number/set", "/v2/fbs/posting/delivering"
# What each flow cannot do without: the push carries too little (one read), packing must be confirmed
# (one read), a label is a task and its result; seller-delivered rFBS posts tracking, moves to
# delivering and confirms the move. (An aggregator posting still awaiting registration when its label is
# due needs one more read; with registration done by then, it does not.)
MINIMUM = {
    "non_integrated": {GET: 3, SHIP: 1, LABEL_CREATE: 1, LABEL_GET: 1, TRACKING: 1, DELIVERING: 1},
    "aggregator": {GET: 2, SHIP: 1, LABEL_CREATE: 1, LABEL_GET: 1},
    "ozon": {GET: 2, SHIP: 1, LABEL_CREATE: 1, LABEL_GET: 1},
}
PATHS = [GET, SHIP, LABEL_CREATE, LABEL_GET, TRACKING, DELIVERING]
SHORT = {GET: "get", SHIP: "ship", LABEL_CREATE: "label/create", LABEL_GET: "label/get", TRACKING: "tracking/set",
         DELIVERING: "delivering"}


async def run(dbs: list[Database], opts: Options) -> Result:
    database = dbs[0]  # the count of calls does not depend on the database
    result = Result("ozon_calls", "Ozon calls per shipped order, by flow",
                    ["flow", *[SHORT[p] for p in PATHS], "other", "total", "minimum", "extra"],
                    config={"database": database.kind, "flows": list(MINIMUM)})
    counts = await _measure(database)
    bars = {}
    for flow, seen in counts.items():
        need = MINIMUM[flow]
        extra = sum(max(0, seen.get(p, 0) - need.get(p, 0)) for p in set(seen) | set(need))
        other = sum(n for p, n in seen.items() if p not in PATHS)
        result.rows.append({"flow": flow, **{SHORT[p]: seen.get(p, 0) for p in PATHS}, "other": other,
                            "total": sum(seen.values()), "minimum": sum(need.values()), "extra": extra})
        result.goals.append(Goal(f"calls beyond the minimum ({flow})", float(extra), 0.0))
        bars[flow] = sum(seen.values())
    result.notes.append("minimum per flow: " + "; ".join(
        f"{flow}: " + ", ".join(f"{SHORT[p]}×{n}" for p, n in need.items()) for flow, need in MINIMUM.items()))
    result.plot = {"kind": "bars", "series": bars, "ylabel": "Ozon calls per shipped order"}
    return result


async def _measure(database: Database) -> dict[str, Counter]:
    async with sandbox_process(1, label_delay=0.2, registration_delay=0.2) as ozon, FakeBotAPI() as tg:
        url = await database.fresh("calls")
        settings = bench_settings(url, ozon_url=ozon.base_url, telegram_url=tg.base_url, label_delay=0.6)
        await db.connect(url, apply_migrations=False)
        (seller,) = (await seed_sellers(settings, 1, default_courier="sf")).values()
        await db.close()
        await ozon.push_url(0, f"{settings.base_url}/ozon/push/{seller.push_token}")
        out = {}
        async with running_service(settings):
            await wait_until(lambda: tg.calls_of("getUpdates"), 30, "the bot polling Telegram")
            for flow in MINIMUM:
                await ozon.clear_calls()
                await _ship_one(ozon, tg, flow)
                out[flow] = Counter(c["path"] for c in await ozon.calls() if c["status"] == 200)
    return out


async def _ship_one(ozon, tg: FakeBotAPI, flow: str) -> None:
    (posting,) = await ozon.orders(0, 1, flows=[flow])
    number = posting["posting_number"]
    card = await wait_until(lambda: _message(tg, f"New order {number}"), 30, f"the alert for {number}")
    packed = next(data for label, data in card.buttons if "Packed" in label)
    tg.push_callback(USER, card.message_id, packed)
    prompt = await wait_until(lambda: _message(tg, f"Waybill number for {number}"), 30, "the waybill prompt")
    await wait_until(lambda: _message(tg, f"label-{number}.pdf", document=True), 30, "the label")
    tg.push_message(USER, WAYBILL, language_code="en")
    done = "sent to Ozon" if flow == "non_integrated" else "first-mile record"
    await wait_until(lambda: _message(tg, done, after=prompt.message_id), 30, f"the {flow} hand-over")


def _message(tg: FakeBotAPI, text: str, *, after: int = 0, document: bool = False):
    for message in reversed(tg.messages(USER)):
        if message.message_id <= after:
            continue
        shown = message.document.filename if document and message.document else (message.text or "")
        if text in (shown or ""):
            return message
    return None
