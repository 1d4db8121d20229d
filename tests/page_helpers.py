"""The action page served for real: services and web app as `ozonbot run` builds them, the sandbox as Ozon,
a desk owner reached through WeChat links; plus a small HTML form reader for the HTTP tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from html.parser import HTMLParser

from aiohttp import web

from bot.app import Services, build_services
from bot.config import Settings
from bot.service import build_web_app
from services.storage.models import Member, Seller
from tests.conftest import API_KEY, CLIENT_ID

WAYBILL = "SF1402938475612"
WECHAT_UA = ("Mozilla/5.0 (Linux; Android 13; M2012K11AC Build/TKQ1.220829.002; wv) AppleWebKit/537.36 "
             "(KHTML, like Gecko) Version/4.0 Chrome/116.0.0.0 Mobile Safari/537.36 XWEB/1160065 "
             "MMWEBSDK/20231202 MMWEBID/2585 MicroMessenger/8.0.47.2560(0x28002F30) WeChat/arm64 Weixin "
             "NetType/WIFI Language/zh_CN ABI/arm64")


@dataclass
class PageDesk:
    services: Services
    seller: Seller
    owner: Member
    base_url: str

    def url(self, member: Member, posting_id: int | None = None) -> str:
        return self.services.links.url(member.id, posting_id)


@asynccontextmanager
async def serving_page(settings: Settings, *, locale: str = "en") -> AsyncIterator[PageDesk]:
    """A connected seller whose sandbox orders are ingested, and the web app listening on its port."""
    services = build_services(settings)
    await services.start(schedule=False)
    runner = web.AppRunner(build_web_app(services))
    try:
        connected = await services.desk.connect_seller(CLIENT_ID, API_KEY)
        owner = await services.desk.join_as(connected.seller, channel="wechat", external_id="o-owner",
                                            chat_id="o-owner", name="Owner", locale=locale, role="owner")
        await services.sync.poll(connected.seller)
        await runner.setup()
        await web.TCPSite(runner, settings.http_host, settings.http_port).start()
        yield PageDesk(services, connected.seller, owner, settings.base_url)
    finally:
        await runner.cleanup()
        await services.stop()


@dataclass
class Form:
    action: str
    method: str
    enctype: str
    fields: dict[str, str] = field(default_factory=dict)
    label: str = ""  # the text of its submit button


class FormReader(HTMLParser):
    """Every form on a page with its hidden fields and the text of its button; the page's links."""

    def __init__(self, page: str):
        super().__init__()
        self.forms: list[Form] = []
        self.links: list[tuple[str, str]] = []
        self._in_button = False
        self._href: str | None = None
        self._text: list[str] = []
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append(Form(attr.get("action", ""), attr.get("method", "get"), attr.get("enctype", "")))
        elif tag == "input" and self.forms and attr.get("type") == "hidden":
            self.forms[-1].fields[attr["name"]] = attr.get("value", "")
        elif tag == "button":
            self._in_button, self._text = True, []
        elif tag == "a":
            self._href, self._text = attr.get("href"), []

    def handle_data(self, data: str) -> None:
        if self._in_button or self._href is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "button" and self._in_button:
            self._in_button = False
            if self.forms:
                self.forms[-1].label = "".join(self._text).strip()
        elif tag == "a" and self._href is not None:
            self.links.append(("".join(self._text).strip(), self._href))
            self._href = None

    def form(self, label_part: str) -> Form:
        found = [f for f in self.forms if label_part in f.label]
        assert found, f"no button {label_part!r} among {[f.label for f in self.forms]}"
        return found[0]

    def form_to(self, action_end: str) -> Form:
        found = [f for f in self.forms if f.action.endswith(action_end)]
        assert found, f"no form posting to {action_end!r}"
        return found[0]
