"""Taking someone off the desk: the owner removes a packer from the member list (Telegram buttons, or typed
on the Official Account); the packer is told, and every button and awaited input they held is refused at once."""

from __future__ import annotations

from services.storage.models import Member, PendingInput, Posting
from tests.conftest import CLIENT_ID
from tests.test_authz import OWNER, PACKER, REFUSED, desk  # noqa: F401  (the desk: owner, packer, others)


async def test_owner_removes_a_packer_whose_buttons_stop_at_once(desk, sandbox, fake_tg):
    tg = fake_tg
    (order,) = sandbox.generate_orders(CLIENT_ID, 1, flows=["non_integrated"])
    number = order["posting_number"]
    await tg.wait_for_message(PACKER, f"New order {number}", timeout=15)
    packer = await Member.get(external_id=str(PACKER))
    await PendingInput.create(member=packer, posting=await Posting.get(posting_number=number), kind="waybill")

    tg.push_message(PACKER, "/members", language_code="en")
    listing = await tg.wait_for_message(PACKER, "Desk of seller")
    assert "Remove" not in str(listing.reply_markup)  # a packer sees the desk, and removes nobody

    tg.push_message(OWNER, "/members", language_code="en")
    listing = await tg.wait_for_message(OWNER, "Desk of seller")
    assert "owner" in listing.text and "packer" in listing.text
    query = tg.press(OWNER, "Remove", message_id=listing.message_id)
    await tg.wait_for(lambda: tg.callback_answer(query), timeout=10)
    assert (await Member.get(id=packer.id)).role == "packer"  # asked first, removed only on Yes
    query = tg.press(OWNER, "Yes, remove")
    answer = await tg.wait_for(lambda: tg.callback_answer(query), timeout=10)
    assert "no longer on the desk" in answer["text"]
    await tg.wait_for_message(PACKER, "You were removed from the desk", timeout=10)
    removed = await Member.get(id=packer.id)
    assert removed.role == "removed" and removed.chat_id is None
    assert not await PendingInput.filter(member_id=packer.id).exists()

    query = tg.press(PACKER, "SF Express")  # the card they still have
    answer = await tg.wait_for(lambda: tg.callback_answer(query), timeout=10)
    assert REFUSED in answer["text"]
    assert (await Posting.get(posting_number=number)).stage == "new"
    tg.push_message(PACKER, "/orders", language_code="en")
    assert number not in (await tg.wait_for_message(PACKER, "not on a desk")).text
