"""/settings in Telegram: buttons change the desk's settings in place, typed values are validated, only the
owner can change anything, and a change steers the running duties without a restart."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sandbox.telegram import DEFAULT_TOKEN  # noqa: F401  (tg_settings builds on it)
from services.storage.models import Posting, Seller
from tests.conftest import CLIENT_ID
from tests.harness.service import running_bot
from tests.test_telegram_e2e import OWNER, PACKER, _connect_owner, tg_settings  # noqa: F401


async def _join_packer(fake_tg) -> None:
    fake_tg.push_message(OWNER, "/invite", language_code="en")
    invite = await fake_tg.wait_for_message(OWNER, "One-time code")
    code = invite.text.split("One-time code for a packer: ")[1].split()[0]
    fake_tg.push_message(PACKER, f"/join {code}", language_code="en", first_name="Packer")
    await fake_tg.wait_for_message(PACKER, "✅", timeout=10)


async def _seller() -> Seller:
    return await Seller.get(client_id=CLIENT_ID)


async def test_owner_changes_settings_with_buttons_in_place(tg_settings, fake_tg):  # noqa: F811
    async with running_bot(tg_settings):
        await _connect_owner(fake_tg)
        fake_tg.push_message(OWNER, "/settings", language_code="en")
        menu = await fake_tg.wait_for_message(OWNER, "Settings of seller")
        assert "🌙 Quiet hours: 22:00-08:00" in menu.text or "🌙 Quiet hours: off" in menu.text
        fake_tg.press(OWNER, "🌙 Quiet hours", message_id=menu.message_id)
        await fake_tg.wait_for(lambda: "choose a value" in fake_tg.message(OWNER, menu.message_id).text)
        fake_tg.press(OWNER, "23:00-07:00", message_id=menu.message_id)
        await fake_tg.wait_for(lambda: "🌙 Quiet hours: 23:00-07:00" in fake_tg.message(OWNER, menu.message_id).text)
        assert (await _seller()).quiet_hours == "23:00-07:00"

        fake_tg.press(OWNER, "🕒 Time zone", message_id=menu.message_id)
        await fake_tg.wait_for(lambda: "Asia/Urumqi" in str(fake_tg.buttons(OWNER, menu.message_id)))
        fake_tg.press(OWNER, "Asia/Urumqi", message_id=menu.message_id)
        await fake_tg.wait_for(lambda: "Time zone: Asia/Urumqi" in fake_tg.message(OWNER, menu.message_id).text)

        fake_tg.press(OWNER, "🚚 Default courier", message_id=menu.message_id)
        await fake_tg.wait_for(lambda: "ZTO Express" in str(fake_tg.buttons(OWNER, menu.message_id)))
        fake_tg.press(OWNER, "ZTO Express", message_id=menu.message_id)
        await fake_tg.wait_for(lambda: "Default courier: ZTO Express" in fake_tg.message(OWNER, menu.message_id).text)
        seller = await _seller()
        assert (seller.timezone, seller.default_courier) == ("Asia/Urumqi", "zto")
        assert len([m for m in fake_tg.messages(OWNER) if "Settings of seller" in (m.text or "")]) == 1, \
            "the menu changes in place instead of piling up messages"


async def test_typed_values_are_validated_and_packers_cannot_change_anything(tg_settings, fake_tg):  # noqa: F811
    async with running_bot(tg_settings):
        await _connect_owner(fake_tg)
        fake_tg.push_message(OWNER, "/settings leads 2h,30m,90s", language_code="en")
        await fake_tg.wait_for_message(OWNER, "Saved: ⏰ Reminders before ship-by = 2h, 30m, 90s")
        fake_tg.push_message(OWNER, "/settings quiet 25:00-07:00", language_code="en")
        await fake_tg.wait_for_message(OWNER, "“25:00-07:00” is not valid here")
        fake_tg.push_message(OWNER, "/settings tz Mars/Olympus", language_code="en")
        await fake_tg.wait_for_message(OWNER, "“Mars/Olympus” is not valid here")
        fake_tg.push_message(OWNER, "/settings digest 07:30", language_code="en")
        await fake_tg.wait_for_message(OWNER, "Saved: ☀️ Morning digest = 07:30")
        seller = await _seller()
        assert (seller.reminder_leads, seller.quiet_hours, seller.timezone, seller.digest_time) == \
            ("2h,30m,90s", "off", "Asia/Shanghai", "07:30")

        await _join_packer(fake_tg)
        fake_tg.push_message(PACKER, "/settings", language_code="en")
        view = await fake_tg.wait_for_message(PACKER, "Settings of seller")
        assert "Only the desk's owner can change its settings." in view.text and view.buttons == []
        fake_tg.push_message(PACKER, "/settings quiet off", language_code="en")
        await fake_tg.wait_for_message(PACKER, "Only the desk's owner can change its settings.")
        # a packer replaying the owner's button data (signed, valid) is refused too
        fake_tg.push_message(OWNER, "/settings", language_code="en")
        menu = await fake_tg.wait_for_message(OWNER, "Settings of seller", after=view.message_id)
        fake_tg.press(OWNER, "🌙 Quiet hours", message_id=menu.message_id)
        await fake_tg.wait_for(lambda: "choose a value" in fake_tg.message(OWNER, menu.message_id).text)
        choice = dict(fake_tg.buttons(OWNER, menu.message_id))["23:00-07:00"]
        query = fake_tg.push_callback(PACKER, view.message_id, choice)
        await fake_tg.wait_for(lambda: fake_tg.callback_answer(query))
        assert "Only the desk's owner" in fake_tg.callback_answer(query)["text"]
        assert (await _seller()).quiet_hours == "off"


async def test_changed_leads_steer_reminders_without_a_restart(tg_settings, sandbox, fake_tg):  # noqa: F811
    (posting,) = sandbox.generate_orders(CLIENT_ID, 1, flows=["non_integrated"], due_in=timedelta(hours=25))
    number = posting["posting_number"]
    async with running_bot(tg_settings):
        await _connect_owner(fake_tg)
        await fake_tg.wait_for_message(OWNER, f"New order {number}", timeout=10)
        await asyncio.sleep(1.5)  # the reminder job ran: with 24h,4h,1h nothing is due 25 h ahead
        assert not [m for m in fake_tg.messages(OWNER) if (m.text or "").startswith("⏰")]
        fake_tg.push_message(OWNER, "/settings leads 26h,1h", language_code="en")
        await fake_tg.wait_for_message(OWNER, "Saved")
        reminder = await fake_tg.wait_for_message(OWNER, f"⏰ {number} is not packed yet", timeout=5)
        assert "Late fee from" in reminder.text, "the reminder says what being late will cost"
        await asyncio.sleep(1.5)
        assert len([m for m in fake_tg.messages(OWNER) if (m.text or "").startswith("⏰")]) == 1
        assert (await Posting.get(posting_number=number)).stage == "new"


def test_values_that_would_break_the_duties_are_refused():
    from services.preferences import BY_NAME, InvalidValue, normalize

    for name, raw in (("quiet", "22:00Z-08:00"), ("quiet", "22:00:00.000000-08:00"), ("quiet", "25:00-07:00"),
                      ("leads", "9999999d"), ("leads", "0s"), ("leads", "31d"), ("digest", "07:30+08:00"),
                      ("digest", "7:30:15"), ("tz", "Mars/Olympus"), ("courier", "dhl")):
        try:
            normalize(BY_NAME[name], raw)
        except InvalidValue:
            continue
        raise AssertionError(f"{name} {raw!r} was accepted")
    assert normalize(BY_NAME["quiet"], "23:00-07:00") == "23:00-07:00"
    assert normalize(BY_NAME["leads"], "90s,2h,30m") == "2h,30m,90s"
    assert normalize(BY_NAME["digest"], "07:30") == "07:30"


async def test_a_broken_settings_row_blocks_no_other_sellers_alerts(make_settings, sandbox):
    """A row written before validation existed: its seller's alerts still go out, unheld, and so do others'."""
    from bot.app import build_services
    from tests.conftest import API_KEY
    from tests.test_duties import Desk

    services = build_services(make_settings(ozon_api_url=sandbox.base_url))
    await services.start(schedule=False)
    try:
        desk = Desk()
        services.channels.register(desk)
        seller = (await services.desk.connect_seller(CLIENT_ID, API_KEY)).seller
        await services.desk.join_as(seller, channel="console", external_id="o", chat_id="o", name="O",
                                    locale="en", role="owner")
        await Seller.filter(id=seller.id).update(quiet_hours="22:00Z-08:00", reminder_leads="9999999d")
        sandbox.generate_orders(CLIENT_ID, 2, due_in=timedelta(minutes=30))
        await services.sync.poll(await _seller())
        await services.duties._reminders.run_due()
        assert len(desk.texts(starting="🆕")) == 2
    finally:
        await services.stop()
