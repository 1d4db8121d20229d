"""WeCom group robot: push-only markdown alerts with the action-page link, at most 20 a minute per robot."""

from __future__ import annotations

import logging

from handlers.ports import WechatPort
from handlers.wechat import render
from handlers.wechat.api import WechatHttp, refusal
from services.pacing import SlidingWindow
from services.storage.models import Member, Seller
from services.views import View
from services.wechat_apps import ROBOT_CHANNEL

log = logging.getLogger(__name__)
ROBOT_LIMIT = 20  # messages a minute per robot (WeCom answers 45009 above)


class RobotSender:
    channel = ROBOT_CHANNEL
    refusal = staticmethod(refusal)  # what the outbox stops retrying

    def __init__(self, port: WechatPort, http: WechatHttp, *, limit: int = ROBOT_LIMIT, period: float = 60.0):
        self.s = port
        self.http = http
        self.limiter = SlidingWindow(limit, period)

    async def send(self, member: Member, view: View) -> str | None:
        key = await self.s.apps.robot_key(member)
        if key is None:
            return None
        self.s.redactor.add(key)
        tr = self.s.catalogs.for_member(member, await Seller.get(id=member.seller_id))
        content = render.robot_markdown(tr, view, self._link(member, view))
        await self.limiter.acquire(key, wait=False)  # a full minute defers the alert, it never blocks others
        base = self.s.wecom_api_url.rstrip("/")
        await self.http.post_plain(f"{base}/cgi-bin/webhook/send?key={key}", "webhook/send",
                                   {"msgtype": "markdown", "markdown": {"content": content}})
        return None  # a robot message cannot be edited: nothing to keep

    async def edit(self, member: Member, message_ref: str, view: View) -> None:
        return None

    def _link(self, member: Member, view: View) -> str | None:
        """The action page for the posting the view is about (or the member's page for a list)."""
        ids = {a.posting_id for a in (self.s.codec.decode(b.action) for b in view.flat_buttons) if a and a.posting_id}
        if not view.buttons:
            return None
        return self.s.links.url(member.id, ids.pop() if len(ids) == 1 else None)
