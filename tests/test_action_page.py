"""The action page over real HTTP: the app as `ozonbot run` serves it, the sandbox as Ozon, a real database."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from urllib.parse import urljoin

import aiohttp
import pytest

from bot.app import utcnow
from services.links import ActionLinks
from services.storage.models import LanguagePref, Member, Posting
from tests.conftest import CLIENT_ID
from tests.page_helpers import WAYBILL, WECHAT_UA, Form, FormReader, serving_page
from tests.test_couriers import encode, waybill

SHIP = "/v4/posting/fbs/ship"
TRACKING = "/v2/fbs/posting/tracking-number/set"


@pytest.fixture
def page_settings(make_settings, sandbox):
    return make_settings(ozon_api_url=sandbox.base_url)


@pytest.fixture
async def http():
    async with aiohttp.ClientSession(headers={"User-Agent": WECHAT_UA}) as session:
        yield session


async def get(http: aiohttp.ClientSession, url: str, **headers) -> tuple[int, str, FormReader]:
    async with http.get(url, headers=headers) as response:
        text = await response.text()
        return response.status, text, FormReader(text)


async def submit(http: aiohttp.ClientSession, page_url: str, form: Form, **extra) -> tuple[int, str, FormReader]:
    """Posts a form as the browser would and follows the redirect back to the page."""
    async with http.post(urljoin(page_url, form.action), data={**form.fields, **extra}) as response:
        text = await response.text()
        if response.history:
            assert response.history[0].status == 303
            assert str(response.url).split("?")[0] == page_url.split("?")[0]
        return response.status, text, FormReader(text)


def ship_calls(sandbox, number: str) -> list:
    return [c for c in sandbox.calls_to(SHIP) if c.body.get("posting_number") == number]


def tracking_calls(sandbox, number: str) -> list:
    return [c for c in sandbox.calls_to(TRACKING) if number in str(c.body)]


async def posting_row(number: str) -> Posting:
    return await Posting.get(posting_number=number)


async def pack(http, url: str, courier: str = "SF Express") -> FormReader:
    status, _, page = await get(http, url)
    assert status == 200
    _, _, page = await submit(http, url, page.form(courier))
    status, text, page = await submit(http, url, page.form("Packed"))
    assert status == 200 and "Packed in Ozon" in text
    return page


async def test_card_courier_packed_waybill_and_status(page_settings, sandbox, http):
    (order,) = sandbox.generate_orders(CLIENT_ID, 1, flows=["non_integrated"])
    number = order["posting_number"]
    async with serving_page(page_settings) as desk:
        posting = await posting_row(number)
        url = desk.url(desk.owner, posting.id)
        async with http.get(url) as response:
            assert response.status == 200 and response.content_type == "text/html"
            headers = response.headers
            text = await response.text()
        assert "default-src 'self'" in headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
        assert headers["Cache-Control"] == "no-store" and headers["X-Frame-Options"] == "DENY"
        assert headers["Referrer-Policy"] == "no-referrer"
        assert f"New order {number}" in text and order["products"][0]["offer_id"] in text
        assert 'name="viewport"' in text and "://" not in text and "src=" not in text  # nothing from outside
        page = FormReader(text)
        assert {f.label for f in page.forms} >= {"SF Express", "ZTO Express", "Other"}

        status, text, page = await submit(http, url, page.form("SF Express"))
        assert status == 200 and "Courier: SF Express" in text
        assert (await posting_row(number)).courier == "sf"
        status, text, page = await submit(http, url, page.form("Packed"))
        assert "Packed in Ozon" in text and f"Waybill number for {number}" in text
        assert 'id="waybill"' in text and 'capture="environment"' in text
        assert len(ship_calls(sandbox, number)) == 1

        status, text, page = await submit(http, url, page.form_to("/waybill"), number=WAYBILL.lower())
        assert f"Tracking number {WAYBILL} sent to Ozon" in text
        assert f"Tracking sent to Ozon: {WAYBILL}" in text  # the card itself shows the new state
        assert sandbox.posting(CLIENT_ID, number)["tracking_number"] == WAYBILL
        row = await posting_row(number)
        assert row.stage == "handed_over" and row.waybill == WAYBILL

        # reloading the page after the redirect shows the answer again but acts on nothing
        async with http.get(url) as response:
            assert response.status == 200
        assert len(ship_calls(sandbox, number)) == 1 and len(tracking_calls(sandbox, number)) == 1


async def test_mismatched_number_is_confirmed_and_partner_flow_sends_nothing(page_settings, sandbox, http):
    (order,) = sandbox.generate_orders(CLIENT_ID, 1, flows=["aggregator"])
    number = order["posting_number"]
    async with serving_page(page_settings) as desk:
        url = desk.url(desk.owner, (await posting_row(number)).id)
        page = await pack(http, url, courier="ZTO Express")
        _, text, page = await submit(http, url, page.form_to("/waybill"), number=WAYBILL)
        assert "does not look like a ZTO Express number" in text
        assert (await posting_row(number)).waybill is None
        _, text, page = await submit(http, url, page.form("Yes, use it"))
        assert "first-mile record" in text
        assert (await posting_row(number)).waybill == WAYBILL
        assert tracking_calls(sandbox, number) == []


async def test_photo_of_the_waybill_is_read(page_settings, sandbox, http):
    (order,) = sandbox.generate_orders(CLIENT_ID, 1, flows=["non_integrated"])
    number = order["posting_number"]
    async with serving_page(page_settings) as desk:
        url = desk.url(desk.owner, (await posting_row(number)).id)
        page = await pack(http, url)
        photo_form = page.form_to("/photo")
        assert photo_form.enctype == "multipart/form-data"

        async def upload(data: bytes, name: str) -> str:
            body = aiohttp.FormData()
            for key, value in photo_form.fields.items():
                body.add_field(key, value)
            body.add_field("photo", data, filename=name, content_type="image/png")
            async with http.post(urljoin(url, photo_form.action), data=body) as response:
                assert response.status == 200
                return await response.text()

        text = await upload(b"this is not an image", "note.png")
        assert "could not read a barcode" in text
        assert (await posting_row(number)).waybill is None
        text = await upload(encode(waybill(WAYBILL), "PNG"), "waybill.png")
        assert f"Tracking number {WAYBILL} sent to Ozon" in text
        assert sandbox.posting(CLIENT_ID, number)["tracking_number"] == WAYBILL


async def test_orders_list_links_each_card_within_the_links_lifetime(page_settings, sandbox, http):
    orders = sandbox.generate_orders(CLIENT_ID, 3, flows=["non_integrated"])
    async with serving_page(page_settings) as desk:
        url = desk.url(desk.owner)
        status, text, page = await get(http, url)
        assert status == 200 and "3 open orders" in text
        links = {label: href for label, href in page.links}
        assert "All open orders" not in links
        original = desk.services.links.verify(url.rsplit("/", 1)[1])
        for order in orders:
            href = links[order["posting_number"]]
            claim = desk.services.links.verify(href)
            assert claim.member_id == desk.owner.id and claim.expires_at <= original.expires_at
            status, text, card = await get(http, urljoin(url, href))
            assert status == 200 and f"New order {order['posting_number']}" in text
            assert any(label == "All open orders" for label, _ in card.links)
        # no posting, no actions: a press posted to the list page is refused
        card_page = urljoin(url, links[orders[0]["posting_number"]])
        sf = (await get(http, card_page))[2].form("SF Express")
        list_csrf = page.forms[0].fields["csrf"]
        press = Form(url.rsplit("/", 1)[1] + "/press", "post", "", {"action": sf.fields["action"], "csrf": list_csrf})
        _, text, _ = await submit(http, url, press)
        assert "This button is not for you" in text
        assert (await posting_row(orders[0]["posting_number"])).courier is None


async def test_language_switch_is_stored_for_the_member(page_settings, sandbox, http):
    (order,) = sandbox.generate_orders(CLIENT_ID, 1, flows=["non_integrated"])
    async with serving_page(page_settings, locale="zh_CN") as desk:
        url = desk.url(desk.owner, (await posting_row(order["posting_number"])).id)
        status, text, page = await get(http, url)
        assert '<html lang="zh-CN">' in text and "顺丰" in text
        russian = next(f for f in page.forms if f.fields.get("locale") == "ru")
        _, text, page = await submit(http, url, russian)
        assert '<html lang="ru">' in text and "Новый заказ" in text
        assert (await Member.get(id=desk.owner.id)).locale == "ru"
        assert (await LanguagePref.get(channel="wechat", external_id="o-owner")).locale == "ru"


async def test_forged_expired_and_foreign_links_get_403_and_change_nothing(page_settings, sandbox, http):
    (order,) = sandbox.generate_orders(CLIENT_ID, 1, flows=["non_integrated"])
    number = order["posting_number"]
    sandbox.add_seller("515151", "other-sandbox-key-987654")
    async with serving_page(page_settings) as desk:
        posting = await posting_row(number)
        good_url = desk.url(desk.owner, posting.id)
        sf = (await get(http, good_url))[2].form("SF Express")
        other = await desk.services.desk.connect_seller("515151", "other-sandbox-key-987654")
        stranger = await desk.services.desk.join_as(other.seller, channel="wechat", external_id="o-stranger",
                                                    chat_id="o-stranger", name="", locale="en", role="owner")
        group = await desk.services.desk.join_as(desk.seller, channel="wechat", external_id="group-1",
                                                 chat_id="group-1", name="", locale="en", role="group")
        leaver = await desk.services.desk.join_as(desk.seller, channel="wechat", external_id="o-left",
                                                  chat_id=None, name="", locale="en", role="packer")
        leaver_url = desk.url(leaver, posting.id)
        await leaver.delete()
        past = ActionLinks(desk.services.box, desk.base_url, lambda: utcnow() - timedelta(days=4))
        token = good_url.rsplit("/", 1)[1]
        bad = {
            "forged": f"{desk.base_url}/a/{token[:-2]}{'AA' if not token.endswith('AA') else 'BB'}",
            "expired": f"{desk.base_url}/a/{past.token(desk.owner.id, posting.id)}",
            "other seller": desk.url(stranger, posting.id),
            "group": desk.url(group, posting.id),
            "member gone": leaver_url,
            "garbage": f"{desk.base_url}/a/not-a-token",
        }
        for name, url in bad.items():
            async with http.get(url, headers={"Accept-Language": "ru-RU,ru;q=0.9"}) as response:
                assert response.status == 403, name
                assert response.headers["Referrer-Policy"] == "no-referrer"
                text = await response.text()
                assert "Ссылка устарела" in text, name
            async with http.post(url + "/press", data=sf.fields) as response:
                assert response.status == 403, name
        async with http.get(bad["expired"]) as response:  # no language given: Chinese
            assert '<html lang="zh-CN">' in await response.text()
        assert (await posting_row(number)).courier is None


async def test_csrf_field_and_posting_binding_are_checked(page_settings, sandbox, http):
    first, second = sandbox.generate_orders(CLIENT_ID, 2, flows=["non_integrated"])
    async with serving_page(page_settings) as desk:
        one = await posting_row(first["posting_number"])
        two = await posting_row(second["posting_number"])
        url_one, url_two = desk.url(desk.owner, one.id), desk.url(desk.owner, two.id)
        sf_one = (await get(http, url_one))[2].form("SF Express")
        sf_two = (await get(http, url_two))[2].form("SF Express")
        for csrf in (None, "", "x" * 22, sf_two.fields["csrf"]):
            fields = {k: v for k, v in sf_one.fields.items() if k != "csrf"}
            if csrf is not None:
                fields["csrf"] = csrf
            async with http.post(urljoin(url_one, sf_one.action), data=fields, allow_redirects=False) as response:
                assert response.status == 403
                assert "out of date" in await response.text()
        # a real reference for posting two, posted through the link of posting one
        _, text, _ = await submit(http, url_one, sf_one, action=sf_two.fields["action"])
        assert "This button is not for you" in text
        assert (await posting_row(first["posting_number"])).courier is None
        assert (await posting_row(second["posting_number"])).courier is None


async def test_oversized_bodies_are_refused(page_settings, sandbox, http):
    (order,) = sandbox.generate_orders(CLIENT_ID, 1, flows=["non_integrated"])
    number = order["posting_number"]
    async with serving_page(page_settings) as desk:
        url = desk.url(desk.owner, (await posting_row(number)).id)
        page = await pack(http, url)
        photo_form = page.form_to("/photo")
        body = aiohttp.FormData()
        body.add_field("csrf", photo_form.fields["csrf"])
        body.add_field("photo", b"\xff" * (11 * 1024 * 1024), filename="huge.jpg", content_type="image/jpeg")
        async with http.post(urljoin(url, photo_form.action), data=body) as response:
            assert response.status == 413
            assert "too large" in await response.text()
        # without a Content-Length (chunked), the upload is cut off once it passes the limit
        boundary = "pageboundary"
        head = (f'--{boundary}\r\nContent-Disposition: form-data; name="csrf"\r\n\r\n{photo_form.fields["csrf"]}'
                f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="photo"; filename="a.jpg"\r\n'
                'Content-Type: image/jpeg\r\n\r\n').encode()

        async def chunks():
            yield head
            for _ in range(12):
                yield b"\xff" * (1024 * 1024)
            yield f"\r\n--{boundary}--\r\n".encode()

        async with http.post(urljoin(url, photo_form.action), data=chunks(),
                             headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}) as response:
            assert response.status == 413
        waybill_form = page.form_to("/waybill")
        async with http.post(urljoin(url, waybill_form.action),
                             data={**waybill_form.fields, "number": WAYBILL, "pad": "x" * 9000}) as response:
            assert response.status == 413
        row = await posting_row(number)
        assert row.waybill is None and row.stage == "packed"
        assert tracking_calls(sandbox, number) == []


async def test_double_tap_on_packed_ships_once(page_settings, sandbox, http):
    (order,) = sandbox.generate_orders(CLIENT_ID, 1, flows=["non_integrated"])
    number = order["posting_number"]
    async with serving_page(page_settings) as desk:
        url = desk.url(desk.owner, (await posting_row(number)).id)
        _, _, page = await submit(http, url, (await get(http, url))[2].form("SF Express"))
        packed = page.form("Packed")
        results = await asyncio.gather(submit(http, url, packed), submit(http, url, packed))
        assert all(status == 200 for status, _, _ in results)
        assert len(ship_calls(sandbox, number)) == 1
        assert (await posting_row(number)).stage == "packed"



async def test_number_goes_to_the_pages_posting_whatever_the_chat_awaited(page_settings, sandbox, http):
    first, second = sandbox.generate_orders(CLIENT_ID, 2, flows=["aggregator"])
    third, = sandbox.generate_orders(CLIENT_ID, 1, flows=["aggregator"])
    async with serving_page(page_settings) as desk:
        urls = [desk.url(desk.owner, (await posting_row(o["posting_number"])).id) for o in (first, second, third)]
        page_one = await pack(http, urls[0])
        await pack(http, urls[1])  # packing the second leaves the chat waiting for the second's waybill
        _, text, _ = await submit(http, urls[0], page_one.form_to("/waybill"), number=WAYBILL)
        assert f"saved as the first-mile record of {first['posting_number']}" in text
        assert (await posting_row(first["posting_number"])).waybill == WAYBILL
        assert (await posting_row(second["posting_number"])).waybill is None
        # a stale page posting a number for an order that is not packed yet changes nothing
        third_csrf = (await get(http, urls[2]))[2].form("SF Express").fields["csrf"]
        fields = {"csrf": third_csrf, "number": "SF1402938475699"}
        async with http.post(urls[2] + "/waybill", data=fields) as response:
            assert response.status == 200
            assert "out of date and has been refreshed" in await response.text()
        row = await posting_row(third["posting_number"])
        assert row.waybill is None and row.stage == "new"


async def test_label_downloads_from_the_page_once_packed(page_settings, sandbox, http):
    """Members whose chat cannot carry a file (the Official Account) take the label from the page."""
    (order,) = sandbox.generate_orders(CLIENT_ID, 1, flows=["non_integrated"])
    async with serving_page(page_settings) as desk:
        posting = await posting_row(order["posting_number"])
        url = desk.url(desk.owner, posting.id)
        async with http.get(url + "/label") as response:  # not packed yet: back to the page, with a word
            assert response.status == 200 and "has not prepared the label" in await response.text()
        await pack(http, url)
        assert "Download the label (PDF)" in (await get(http, url))[1]
        async with http.get(url + "/label") as response:
            assert response.status == 200 and response.content_type == "application/pdf"
            assert response.headers["Content-Disposition"] == f'attachment; filename="label-{order["posting_number"]}.pdf"'
            assert (await response.read()).startswith(b"%PDF")
        other = ActionLinks(desk.services.box, "http://x", utcnow).token(desk.owner.id + 999, posting.id)
        async with http.get(urljoin(url, f"{other}/label")) as response:
            assert response.status == 403
