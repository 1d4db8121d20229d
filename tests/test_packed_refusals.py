"""Packed when Ozon says no: the packer is told why and what to do, the card goes back to a state they can
act on, and nothing is shipped twice when they press again."""

from __future__ import annotations

import pytest

from bot.app import build_services
from sandbox.ozon import Faults
from services.storage.models import Intent, Posting
from tests.conftest import API_KEY, CLIENT_ID
from tests.test_duties import FAST_RETRY, Desk


@pytest.fixture
async def desk(make_settings, sandbox):
    services = build_services(make_settings(ozon_api_url=sandbox.base_url), retry=FAST_RETRY)
    await services.start(schedule=False)
    channel = Desk()
    services.channels.register(channel)
    seller = (await services.desk.connect_seller(CLIENT_ID, API_KEY)).seller
    packer = await services.desk.join_as(seller, channel="console", external_id="p", chat_id="p", name="P",
                                         locale="en", role="packer")
    yield services, seller, packer
    await services.stop()


async def _choose_courier(services, seller, packer, sandbox) -> Posting:
    (posting,) = sandbox.generate_orders(CLIENT_ID, 1, flows=["non_integrated"])
    await services.sync.poll(seller)
    row = await Posting.get(posting_number=posting["posting_number"])
    await services.buttons.press(packer, services.codec.encode("c", row.id, "yto"))
    return row


def _ships(sandbox, number: str) -> list:
    return [c for c in sandbox.calls_to("/v4/posting/fbs/ship") if c.body.get("posting_number") == number]


async def test_cancelled_meanwhile_stops_the_packer(desk, sandbox):
    services, seller, packer = desk
    row = await _choose_courier(services, seller, packer, sandbox)
    sandbox.cancel(CLIENT_ID, row.posting_number)  # the buyer cancels while the parcel is being packed
    answer = await services.buttons.press(packer, services.codec.encode("p", row.id))
    assert answer.alert and answer.toast == "Ozon says this order was cancelled. Stop packing it."
    assert (await Posting.get(id=row.id)).stage == "cancelled"
    again = await services.buttons.press(packer, services.codec.encode("p", row.id))
    assert again.alert and _ships(sandbox, row.posting_number) == []


async def test_requirements_not_met_send_the_packer_to_the_cabinet_and_allow_a_retry(desk, sandbox):
    services, seller, packer = desk
    row = await _choose_courier(services, seller, packer, sandbox)
    snapshot = dict(row.snapshot)
    snapshot["products"] = [{**product, "sku": 999} for product in snapshot["products"]]
    await Posting.filter(id=row.id).update(snapshot=snapshot)  # Ozon will not recognise the goods
    answer = await services.buttons.press(packer, services.codec.encode("p", row.id))
    assert answer.alert and answer.toast.startswith("Ozon needs more data before packing (UNKNOWN_PRODUCT_DEFINED)")
    assert (await Posting.get(id=row.id)).stage == "courier", "the Packed button is offered again"
    assert (await Intent.get(posting_id=row.id, kind="ship")).state == "failed"
    await services.sync.poll(seller)  # the seller fixed it in the cabinet: a fresh read of the goods
    await Posting.filter(id=row.id).update(snapshot={})
    retry = await services.buttons.press(packer, services.codec.encode("p", row.id))
    assert retry.toast == "Packed in Ozon ✅" and len(_ships(sandbox, row.posting_number)) == 1


async def test_ozon_down_keeps_the_order_and_says_it_will_retry(desk, sandbox):
    services, seller, packer = desk
    row = await _choose_courier(services, seller, packer, sandbox)
    sandbox.faults = Faults(rate_500=1.0, paths={"/v4/posting/fbs/ship"})
    answer = await services.buttons.press(packer, services.codec.encode("p", row.id))
    assert answer.alert and answer.toast.startswith("Ozon is not answering. I will keep trying")
    assert (await Posting.get(id=row.id)).stage == "packing"
    assert (await Intent.get(posting_id=row.id, kind="ship")).state == "pending"
    sandbox.faults = Faults()
    assert await services.runner.resume() == 1
    assert (await Posting.get(id=row.id)).stage == "packed" and len(_ships(sandbox, row.posting_number)) == 1


async def test_an_error_of_our_own_after_ozon_packed_never_leaves_the_posting_stuck(desk, sandbox, monkeypatch):
    """M6: an exception that is not Ozon's (a database error, a surprising payload) during Packed used to leave
    the intent claimed by the live process for ever: no buttons, 'already in progress', no reminders."""
    from services.shipping import Shipping

    services, seller, packer = desk
    row = await _choose_courier(services, seller, packer, sandbox)
    original = Shipping._mark_packed
    calls = {"n": 0}

    async def dying_mark_packed(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("database is locked")
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(Shipping, "_mark_packed", dying_mark_packed)
    answer = await services.buttons.press(packer, services.codec.encode("p", row.id))
    assert answer.alert and answer.toast.startswith("Something went wrong on our side while packing (RuntimeError)")
    intent = await Intent.get(posting_id=row.id, kind="ship")
    assert intent.claimed_by is None and intent.state == "failed"
    assert (await Posting.get(id=row.id)).stage == "courier", "the Packed button is offered again"
    await services.lease.heartbeat()  # nothing of that run is renewed any more
    again = await services.buttons.press(packer, services.codec.encode("p", row.id))
    assert again.toast == "Packed in Ozon ✅"
    assert (await Posting.get(id=row.id)).stage == "packed"
    assert len([c for c in _ships(sandbox, row.posting_number) if c.status == 200]) == 1  # Ozon read, not asked twice
