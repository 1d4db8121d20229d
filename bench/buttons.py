"""Scenario 4: button throughput. Every card's "Packed" pressed at once; each press runs end to end
through `ozonbot run` (callback → authorisation → Ozon ship and confirmation → card edits → waybill
prompt). The floor is a bare python-telegram-bot application on the same fake Bot API whose handler
answers the callback and edits the message: what the library itself costs per update."""

from __future__ import annotations

import resource
import time

from bench.harness import Database, bench_settings, chat_of, running_service, seed_sellers, wait_until
from bench.options import Options
from bench.report import Goal, Result
from bench.sandbox_proc import sandbox_process
from sandbox.telegram import FakeBotAPI
from services.storage import db

GOAL_RATIO = 3.0
# The presses come from this many desks: one person pressing 150 buttons in a second is a flood that the
# inbound limit (OZONBOT_INBOUND_PER_MEMBER, 30 a minute) rightly drops
DESKS = 10


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def run(dbs: list[Database], opts: Options) -> Result:
    presses = 40 if opts.quick else 150
    result = Result("buttons", f"Button throughput: {presses} “Packed” presses at once from {DESKS} desks",
                    ["database", "handler", "presses", "seconds", "presses_per_s", "cpu_ms_per_press",
                     "cpu ratio to floor", "wall ratio to floor"],
                    config={"presses": presses, "desks": DESKS, "flow": "non_integrated"})
    bars = {}
    for database in dbs:
        floor, bot = await _measure(database, presses)
        for name, m in (("PTB echo (floor)", floor), ("ozonbot", bot)):
            result.rows.append({"database": database.kind, "handler": name, "presses": presses,
                                "seconds": m["seconds"], "presses_per_s": presses / m["seconds"],
                                "cpu_ms_per_press": m["cpu"] / presses * 1000,
                                "cpu ratio to floor": m["cpu"] / floor["cpu"],
                                "wall ratio to floor": m["seconds"] / floor["seconds"]})
        ratio = bot["cpu"] / floor["cpu"]
        result.goals.append(Goal(f"CPU cost per press vs the PTB floor ({database.kind})", ratio, GOAL_RATIO, "×"))
        bars[f"floor {database.kind}"] = floor["cpu"] / presses * 1000
        bars[f"ozonbot {database.kind}"] = bot["cpu"] / presses * 1000
    result.notes.append("cost = CPU time of the process hosting the bot and the fake Bot API (the Ozon sandbox "
                        "runs apart); wall time is bounded by Telegram's 30 messages/s, which ozonbot's "
                        "AIORateLimiter honours (each press edits the card once, twice when Ozon takes over "
                        "0.7 s, and sends the waybill prompt) and the bare floor does not")
    result.plot = {"kind": "bars", "series": bars, "ylabel": "CPU ms per press"}
    return result


async def _measure(database: Database, presses: int) -> tuple[dict, dict]:
    per_desk = presses // DESKS
    async with sandbox_process(DESKS, per_desk, flows="non_integrated") as ozon, FakeBotAPI() as tg:
        floor = await _echo_floor(tg, presses)
        url = await database.fresh("buttons")
        # labels come later (OZONBOT_LABEL_DELAY): kept out of the window, which measures the presses
        settings = bench_settings(url, ozon_url=ozon.base_url, telegram_url=tg.base_url, label_delay=3600)
        await db.connect(url, apply_migrations=False)
        await seed_sellers(settings, DESKS, default_courier="sf")  # cards open at the Packed step
        await db.close()
        async with running_service(settings):
            cards = await wait_until(lambda: _packed_buttons(tg, per_desk), 120, f"{presses} cards")
            cpu, began = _cpu(), time.monotonic()
            queries = [tg.push_callback(chat, message_id, data) for chat, message_id, data in cards]
            await wait_until(lambda: _done(tg, queries, "Waybill number for", presses), 300, "every press",
                             interval=0.25)
            bot = {"seconds": time.monotonic() - began, "cpu": _cpu() - cpu}
    return floor, bot


def _packed_buttons(tg: FakeBotAPI, per_desk: int) -> list[tuple[int, int, str]] | None:
    """(chat, message, data) of every card's Packed button once each desk has all its cards."""
    cards = []
    for desk in range(DESKS):
        chat = chat_of(desk)
        found = [(chat, m.message_id, data) for m in tg.messages(chat) if "New order" in (m.text or "")
                 for label, data in m.buttons if "Packed" in label and data]
        if len(found) < per_desk:
            return None
        cards += found
    return cards


def _done(tg: FakeBotAPI, queries: list[str], reply: str, count: int) -> bool:
    """Checked every 250 ms: the check runs in the measured process, so it must stay cheap."""
    if not all(tg.callback_answer(q) for q in queries):
        return False
    texts = (str(c.params.get("text") or "") for c in tg.calls[-4 * count:])
    return sum(1 for text in texts if reply in text) >= count


async def _echo_floor(tg: FakeBotAPI, presses: int) -> dict:
    """A bare PTB application: answer the callback, edit the message. No database, no Ozon."""
    from telegram.ext import CallbackQueryHandler

    async def echo(update, context) -> None:
        query = update.callback_query
        await query.answer()
        await query.edit_message_text(f"echo {query.data}")

    app = tg.builder().concurrent_updates(64).build()
    app.add_handler(CallbackQueryHandler(echo))
    await app.initialize()
    await app.start()
    await app.updater.start_polling(poll_interval=0.0, timeout=10)
    try:
        chats = [chat_of(i % DESKS) for i in range(presses)]
        messages = [await app.bot.send_message(chat, f"press {i}") for i, chat in enumerate(chats)]
        cpu, began = _cpu(), time.monotonic()
        queries = [tg.push_callback(chat, m.message_id, f"p{i}")
                   for i, (chat, m) in enumerate(zip(chats, messages, strict=True))]
        await wait_until(lambda: _done(tg, queries, "echo p", presses), 120, "every echo", interval=0.25)
        return {"seconds": time.monotonic() - began, "cpu": _cpu() - cpu}
    finally:
        await app.updater.stop()
        await app.stop()
        await app.shutdown()
