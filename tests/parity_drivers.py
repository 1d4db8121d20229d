"""One person's hands on each surface, for the parity test: say a text, press a labelled button on a posting's
card, send a waybill photo. Each driver speaks its platform's own protocol over real HTTP (the fake Bot API,
signed WeCom callbacks, signed Official Account callbacks and the action page, the console's lines), so the
test drives the real adapters; none of them calls the conversation core directly."""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

import aiohttp

from handlers.wechat.render import PICK_KEY
from tests.page_helpers import FormReader

UNPROMPTED = ("🆕", "☀️", "⏰")  # alerts, the digest and reminders arrive on their own, not as answers


class Driver:
    """A person on a surface. `who` is a role name ('owner', 'packer'); each driver maps it to an identity.
    `say` returns what the bot answered; with `expect`, it waits until the answer holds that text (a label or a
    late reply may come first)."""

    surface: str
    slash = False  # commands are typed /lang on this surface, words (语言, lang) elsewhere

    async def command(self, who: str, text: str, expect: str | None = None) -> str:
        return await self.say(who, ("/" if self.slash else "") + text, expect)

    async def say(self, who: str, text: str, expect: str | None = None) -> str:
        raise NotImplementedError

    async def press(self, who: str, locator: str, label: str) -> None:
        """Presses the button labelled `label` on the latest message that shows `locator` (a posting number)."""
        raise NotImplementedError

    async def photo(self, who: str, number: str, data: bytes, expect: str) -> str:
        raise NotImplementedError

    async def card(self, who: str, number: str) -> None:
        """Waits until the posting's alert has reached this person."""
        raise NotImplementedError


async def _until(collect, expect: str | None, what: str, timeout: float = 20.0) -> str:
    """Polls `collect()` (the text answered so far) until it is non-empty and holds `expect`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        text = collect()
        if text and (expect is None or expect in text):
            if expect is None:
                await asyncio.sleep(0.3)  # an answer may come in two messages
                text = collect()
            return text
        if loop.time() > deadline:
            raise AssertionError(f"no answer {expect!r} to {what!r}; got {text!r}")
        await asyncio.sleep(0.05)


# ---- Telegram ----------------------------------------------------------------------------------
@dataclass
class TelegramDriver(Driver):
    tg: object
    ids: dict[str, int]
    surface: str = "telegram"
    slash = True

    def _after(self, uid: int, last: int) -> str:
        return "\n".join(m.text or m.caption or "" for m in self.tg.messages(uid)
                         if m.message_id > last and not (m.text or m.caption or "").startswith(UNPROMPTED))

    def _last(self, uid: int) -> int:
        return max((m.message_id for m in self.tg.messages(uid)), default=0)

    async def say(self, who: str, text: str, expect: str | None = None) -> str:
        uid = self.ids[who]
        last = self._last(uid)
        self.tg.push_message(uid, text, language_code="en")
        return await _until(lambda: self._after(uid, last), expect, text)

    async def press(self, who: str, locator: str, label: str) -> None:
        uid = self.ids[who]
        # a press's edit may land just after its callback answer: wait for the message to show the locator
        card = await self.tg.wait_for(lambda: next((m for m in reversed(self.tg.messages(uid))
                                                    if locator in (m.text or "") and m.reply_markup), None),
                                      timeout=20, what=f"a message with {locator!r}")
        query = self.tg.press(uid, label, message_id=card.message_id)
        await self.tg.wait_for(lambda: self.tg.callback_answer(query), timeout=20, what=f"pressing {label}")

    async def photo(self, who: str, number: str, data: bytes, expect: str) -> str:
        uid = self.ids[who]
        last = self._last(uid)
        self.tg.push_message(uid, photo=data, language_code="en")
        return await _until(lambda: self._after(uid, last), expect, "a photo")

    async def card(self, who: str, number: str) -> None:
        await self.tg.wait_for_message(self.ids[who], f"New order {number}", timeout=20)


# ---- WeCom app ---------------------------------------------------------------------------------
@dataclass
class WecomDriver(Driver):
    fake: object
    callbacks: object
    ids: dict[str, str]
    surface: str = "wecom"
    cards: dict[str, dict] = field(default_factory=dict)  # task id -> the card as our presses left it

    def _after(self, user: str, before: int) -> str:
        return "\n".join(json.dumps(s.body, ensure_ascii=False) for s in self.fake.sent[before:] if s.touser == user and not s.dropped)

    async def say(self, who: str, text: str, expect: str | None = None) -> str:
        user, before = self.ids[who], len(self.fake.sent)
        assert (await self.callbacks.post(self.callbacks.text(user, text)))[0] == 200
        return await _until(lambda: self._after(user, before), expect, text)

    async def press(self, who: str, locator: str, label: str) -> None:
        user = self.ids[who]
        current = {c["task_id"]: self.cards.get(c["task_id"], c) for c in self.fake.cards_to(user)}
        task_id, card = next((t, c) for t, c in reversed(current.items())
                             if locator in json.dumps(c, ensure_ascii=False))
        code = self.fake.issue_response_code()
        options = (card.get("button_selection") or {}).get("option_list") or []
        option = next((o["id"] for o in options if _shows(o["text"], label)), None)
        if option is not None:
            inner = self.callbacks.click(user, task_id, PICK_KEY, code, option=option)
        else:
            key = next((b["key"] for b in card["button_list"] if _shows(b["text"], label)), None)
            assert key, f"no button {label!r} on {card}"
            inner = self.callbacks.click(user, task_id, key, code)
        assert (await self.callbacks.post(inner))[0] == 200
        update = await self.fake.wait_for(lambda: next((u for u in self.fake.updates if u["response_code"] == code),
                                                       None), timeout=20)
        self.cards[task_id] = update.get("template_card", card)

    async def photo(self, who: str, number: str, data: bytes, expect: str) -> str:
        user = self.ids[who]
        # Packed runs after the click's card update: a photo sent before the bot asks is not a waybill yet
        await self.fake.wait_for(lambda: f"Waybill number for {number}" in self._after(user, 0), timeout=20)
        before = len(self.fake.sent)
        media = self.fake.add_media(data)
        assert (await self.callbacks.post(self.callbacks.image(user, media)))[0] == 200
        return await _until(lambda: self._after(user, before), expect, "a photo")

    async def card(self, who: str, number: str) -> None:
        user = self.ids[who]
        await self.fake.wait_for(lambda: any(number in json.dumps(c, ensure_ascii=False)
                                             for c in self.fake.cards_to(user)), timeout=20)


def _shows(text: str, label: str) -> bool:
    """WeCom cuts a button's text short (15 characters): '🚚 Default courie' shows 'Default courier'."""
    return label in text or label.startswith(text.split(" ", 1)[-1])


# ---- Official Account and the action page ------------------------------------------------------
@dataclass
class OfficialDriver(Driver):
    fake: object
    followers: dict[str, object]  # role -> tests.test_wechat_official.Follower
    port: int
    http: aiohttp.ClientSession
    surface: str = "wechat"
    pages: dict[tuple[str, str], str] = field(default_factory=dict)

    async def say(self, who: str, text: str, expect: str | None = None) -> str:
        follower = self.followers[who]
        before = len(self.fake.custom)
        passive = await follower.text(text)  # inside WeChat's 5 s; what takes longer follows as a message

        def answered() -> str:
            late = [m["text"]["content"] for m in self.fake.custom[before:] if m["touser"] == follower.openid]
            return "\n".join([passive, *late]).strip()

        return await _until(answered, expect, text)

    def local(self, url: str) -> str:
        parts = urlsplit(url)
        return f"http://127.0.0.1:{self.port}{parts.path}" + (f"?{parts.query}" if parts.query else "")

    async def card(self, who: str, number: str) -> None:
        openid = self.followers[who].openid
        alert = await self.fake.wait_for(lambda: next(
            (t for t in self.fake.templates if t["touser"] == openid and
             t["data"]["character_string1"]["value"] == number), None), timeout=20)
        self.pages[(who, number)] = self.local(alert["url"])

    async def press(self, who: str, locator: str, label: str) -> None:
        url = self.pages[(who, locator)]
        async with self.http.get(url) as response:
            form = FormReader(await response.text()).form(label)
        async with self.http.post(urljoin(url, form.action), data=form.fields) as response:
            assert response.status == 200

    async def photo(self, who: str, number: str, data: bytes, expect: str) -> str:
        url = self.pages[(who, number)]
        async with self.http.get(url) as response:
            form = FormReader(await response.text()).form_to("/photo")
        body = aiohttp.FormData()
        for key, value in form.fields.items():
            body.add_field(key, value)
        body.add_field("photo", data, filename="waybill.jpg", content_type="image/jpeg")
        async with self.http.post(urljoin(url, form.action), data=body) as response:
            return await response.text()


# ---- the console (the demo's channel) ----------------------------------------------------------
@dataclass
class ConsoleDriver(Driver):
    channel: object  # handlers.console.ConsoleChannel, writing into `lines`
    lines: list[str]
    surface: str = "console"
    slash = True

    async def say(self, who: str, text: str, expect: str | None = None) -> str:
        before = len(self.lines)
        await self.channel.handle_line(text)
        return await _until(lambda: "\n".join(self.lines[before:]), expect, text)

    async def press(self, who: str, locator: str, label: str) -> None:
        card = next(text for text in reversed(self.lines) if locator in text and "[" in text)
        option = next((n for n, text in re.findall(r"\[(\d+)\] ([^\[\n]*)", card) if label in text), None)
        assert option, f"no option {label!r} in {card!r}"
        await self.channel.handle_line(option)

    async def card(self, who: str, number: str) -> None:
        await _until(lambda: "\n".join(t for t in self.lines if number in t), None, f"the card of {number}")
