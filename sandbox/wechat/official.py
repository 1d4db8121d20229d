"""A fake Official Account API (api.weixin.qq.com/cgi-bin) on loopback.

stable_token (40013 wrong appid, 40001 wrong secret), template messages checked like WeChat checks
category templates (47003 on a bad value, 43004 when the user does not follow), customer-service text
only inside the window a follower's message opened (45015 outside), menu/create, qrcode/create; any
path can be made to fail with `fail_next` (40001, 42001, 45009 …).
"""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

TIME_VALUE = re.compile(r"^\d{4}年\d{1,2}月\d{1,2}日 \d{2}:\d{2}$")


@dataclass
class Call:
    path: str
    params: dict[str, str]
    body: Any
    errcode: int = 0


class FakeOfficialAccount:
    def __init__(self, app_id: str, secret: str, template_id: str):
        self.app_id, self.secret, self.template_id = app_id, secret, template_id
        self.calls: list[Call] = []
        self.followers: set[str] = set()
        self.windows: dict[str, float] = {}  # openid -> when their 48 h window closes
        self.templates: list[dict] = []
        self.custom: list[dict] = []
        self.menu: dict | None = None
        self.qrcodes: dict[str, str] = {}  # ticket -> scene_str
        self._tokens: dict[str, bool] = {}
        self._faults: dict[str, list[int]] = {}
        self._runner: web.AppRunner | None = None
        self.base_url = ""
        self._changed = asyncio.Event()

    def follow(self, openid: str) -> None:
        self.followers.add(openid)

    def unfollow(self, openid: str) -> None:
        self.followers.discard(openid)

    def user_wrote(self, openid: str) -> None:
        self.windows[openid] = time.time() + 48 * 3600

    def fail_next(self, path: str, errcode: int, times: int = 1) -> None:
        self._faults.setdefault(path, []).extend([errcode] * times)

    def calls_to(self, path: str) -> list[Call]:
        return [c for c in self.calls if c.path == path]

    async def wait_for(self, predicate, timeout: float = 10.0):
        deadline = time.monotonic() + timeout
        while not (result := predicate()):
            if time.monotonic() > deadline:
                raise AssertionError("fake Official Account: condition not met in time")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), 0.05)
            except TimeoutError:
                pass
        return result

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/cgi-bin/{path:.*}", self._dispatch)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.base_url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()

    async def _dispatch(self, request: web.Request) -> web.Response:
        path, params = request.match_info["path"], dict(request.query)
        body = await request.json() if request.can_read_body else None
        call = Call(path, params, body)
        self.calls.append(call)
        try:
            faults = self._faults.get(path)
            if faults:
                raise _Err(faults.pop(0), "injected")
            if path == "stable_token":
                answer = self._stable_token(body or {})
            else:
                self._check_token(params.get("access_token", ""))
                handler = {"message/template/send": self._template, "message/custom/send": self._custom,
                           "menu/create": self._menu, "qrcode/create": self._qrcode}.get(path)
                if handler is None:
                    raise _Err(48001, "api unauthorized")
                answer = handler(body or {})
        except _Err as err:
            call.errcode = err.code
            answer = {"errcode": err.code, "errmsg": err.msg}
        self._changed.set()
        return web.json_response(answer)

    def _stable_token(self, body: dict) -> dict:
        if body.get("grant_type") != "client_credential" or body.get("appid") != self.app_id:
            raise _Err(40013, "invalid appid")
        if body.get("secret") != self.secret:
            raise _Err(40001, "invalid credential")
        token = "OA-" + secrets.token_hex(12)
        self._tokens[token] = True
        return {"access_token": token, "expires_in": 7200}

    def _check_token(self, token: str) -> None:
        if token not in self._tokens:
            raise _Err(40001, "invalid credential, access_token is invalid or not latest")

    def _template(self, body: dict) -> dict:
        if body.get("template_id") != self.template_id:
            raise _Err(40037, "invalid template_id")
        if body.get("touser") not in self.followers:
            raise _Err(43004, "require subscribe")
        for key, item in (body.get("data") or {}).items():
            value = str(item.get("value", ""))
            if key.startswith("thing") and not 0 < len(value) <= 20 or \
                    key.startswith("character_string") and (len(value) > 32 or not value.isascii()) or \
                    key.startswith("time") and not TIME_VALUE.match(value):
                raise _Err(47003, f"argument invalid! data.{key}.value invalid")
        self.templates.append(body)
        return {"errcode": 0, "errmsg": "ok", "msgid": secrets.randbelow(10 ** 12)}

    def _custom(self, body: dict) -> dict:
        openid = body.get("touser")
        if openid not in self.followers or self.windows.get(openid, 0) < time.time():
            raise _Err(45015, "response out of time limit or subscription is canceled")
        self.custom.append(body)
        return {"errcode": 0, "errmsg": "ok"}

    def _menu(self, body: dict) -> dict:
        """WeChat's custom-menu rules (mp.weixin.qq.com 自定义菜单创建接口): 1-3 top buttons of at most 16 bytes,
        each either an action or up to 5 sub-buttons of at most 60 bytes; a click carries a key of at most 128."""
        buttons = body.get("button") or []
        if not 0 < len(buttons) <= 3 or any(len(b.get("name", "").encode()) > 16 for b in buttons):
            raise _Err(40017, "invalid button")
        for button in buttons:
            subs = button.get("sub_button")
            if subs is not None and not (0 < len(subs) <= 5):
                raise _Err(40023, "invalid sub button size")
            for item in subs or [button]:
                if subs is not None and not 0 < len(item.get("name", "").encode()) <= 60:
                    raise _Err(40018, "invalid button name size")
                if item.get("type") == "click" and not 0 < len(str(item.get("key", "")).encode()) <= 128:
                    raise _Err(40019, "invalid button key size")
                if item.get("type") not in ("click", "view", "scancode_push", "scancode_waitmsg", "pic_sysphoto",
                                            "location_select", "media_id", "article_id", "miniprogram"):
                    raise _Err(40016, "invalid button type")
        self.menu = body
        return {"errcode": 0, "errmsg": "ok"}

    def _qrcode(self, body: dict) -> dict:
        scene = ((body.get("action_info") or {}).get("scene") or {}).get("scene_str", "")
        if body.get("action_name") != "QR_STR_SCENE" or not 0 < len(scene) <= 64:
            raise _Err(40053, "invalid action info")
        if not 60 <= int(body.get("expire_seconds", 0)) <= 2592000:
            raise _Err(40009, "invalid expire_seconds")
        ticket = "gQ" + secrets.token_urlsafe(20)
        self.qrcodes[ticket] = scene
        return {"ticket": ticket, "expire_seconds": body["expire_seconds"], "url": "http://weixin.qq.com/q/x"}


class _Err(Exception):
    def __init__(self, code: int, msg: str):
        super().__init__(msg)
        self.code, self.msg = code, msg
