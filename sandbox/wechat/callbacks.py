"""Plays the WeCom servers' side of the callback: builds a member's text, image or card click, signs and
encrypts it with the independent implementation (sandbox/wechat/crypto.py) and POSTs it to our URL."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

import aiohttp

from sandbox.wechat.crypto import CallbackSigner, Signed, xml


@dataclass
class WecomCallbacks:
    url: str
    signer: CallbackSigner
    agent_id: int

    @property
    def corp_id(self) -> str:
        return self.signer.receive_id

    def _base(self, user: str, kind: str) -> dict:
        return {"ToUserName": self.corp_id, "FromUserName": user, "CreateTime": int(time.time()), "MsgType": kind}

    def text(self, user: str, content: str) -> str:
        return xml({**self._base(user, "text"), "Content": content, "MsgId": secrets.randbelow(10 ** 18),
                    "AgentID": self.agent_id})

    def image(self, user: str, media_id: str) -> str:
        return xml({**self._base(user, "image"), "PicUrl": "http://example.invalid/p.jpg", "MediaId": media_id,
                    "MsgId": secrets.randbelow(10 ** 18), "AgentID": self.agent_id})

    def click(self, user: str, task_id: str, key: str, response_code: str, *, option: str | None = None) -> str:
        fields = {**self._base(user, "event"), "Event": "template_card_event", "EventKey": key, "TaskId": task_id,
                  "CardType": "button_interaction", "ResponseCode": response_code, "AgentID": self.agent_id}
        if option is not None:
            fields["SelectedItems"] = {"SelectedItem": {"QuestionKey": "choice", "OptionIds": {"OptionId": option}}}
        return xml(fields)

    def menu_click(self, user: str, key: str) -> str:
        """A tap on the app's own menu (not a card button): Event=click with the button's key."""
        return xml({**self._base(user, "event"), "Event": "click", "EventKey": key, "AgentID": self.agent_id})

    def event(self, user: str, event: str) -> str:
        return xml({**self._base(user, "event"), "Event": event, "EventKey": "", "AgentID": self.agent_id})

    def sign(self, inner: str, **kwargs) -> Signed:
        return self.signer.wecom(inner, agent_id=str(self.agent_id), **kwargs)

    async def post(self, inner_or_signed: str | Signed) -> tuple[int, str]:
        signed = inner_or_signed if isinstance(inner_or_signed, Signed) else self.sign(inner_or_signed)
        async with aiohttp.ClientSession() as session, session.post(
                self.url, params=signed.query, data=signed.body.encode(),
                headers={"Content-Type": "text/xml"}) as response:
            return response.status, await response.text()

    async def get(self, params: dict) -> tuple[int, str]:
        async with aiohttp.ClientSession() as session, session.get(self.url, params=params) as response:
            return response.status, await response.text()
