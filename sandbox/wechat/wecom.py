"""A fake WeCom server API (qyapi.weixin.qq.com/cgi-bin) on loopback, strict where WeCom is strict.

Tokens per (corp, secret) with 40001 for a wrong secret, 40014 for an unknown token and 42001 after
`expire_tokens()`; message/send validates text, file and template_card bodies (task_id unique per app,
at most 6 buttons, at most 10 dropdown options) and returns a response_code for button cards;
update_template_card accepts each response_code once; 30 messages a minute per member, the excess is
dropped silently as on WeCom; group robot webhooks with the 20-a-minute limit (45009).
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

TASK_ID = re.compile(r"^[0-9A-Za-z_\-@]{1,128}$")


@dataclass
class Call:
    path: str
    params: dict[str, str]
    body: Any
    errcode: int = 0


@dataclass
class FakeApp:
    corp_id: str
    secret: str
    agent_id: int
    users: list[str]
    task_ids: set[str] = field(default_factory=set)
    menu: dict | None = None  # what menu/create set


@dataclass
class Sent:
    touser: str
    body: dict
    response_code: str | None
    dropped: bool = False


class FakeWecom:
    def __init__(self, *, member_limit: int = 30, member_period: float = 60.0, robot_limit: int = 20,
                 robot_period: float = 60.0):
        self.calls: list[Call] = []
        self.sent: list[Sent] = []
        self.updates: list[dict] = []
        self.robot_messages: list[dict] = []
        self.apps: dict[str, FakeApp] = {}
        self.robot_keys: set[str] = set()
        self.media: dict[str, bytes] = {}
        self._tokens: dict[str, tuple[str, bool]] = {}  # token -> (corp_id, expired)
        self._codes: dict[str, bool] = {}  # response_code -> used
        self._member_sends: dict[str, list[float]] = {}
        self._robot_sends: dict[str, list[float]] = {}
        self._faults: dict[str, list[int]] = {}
        self.member_limit, self.member_period = member_limit, member_period
        self.robot_limit, self.robot_period = robot_limit, robot_period
        self._runner: web.AppRunner | None = None
        self.base_url = ""
        self._changed = asyncio.Event()

    # ---- control -------------------------------------------------------------------------------
    def add_app(self, corp_id: str, secret: str, agent_id: int, users: list[str]) -> FakeApp:
        app = FakeApp(corp_id, secret, agent_id, list(users))
        self.apps[corp_id] = app
        return app

    def add_robot(self, key: str) -> None:
        self.robot_keys.add(key)

    def add_media(self, data: bytes) -> str:
        media_id = "MEDIA" + secrets.token_hex(8)
        self.media[media_id] = data
        return media_id

    def expire_tokens(self) -> None:
        self._tokens = {token: (corp, True) for token, (corp, _) in self._tokens.items()}

    def fail_next(self, path: str, errcode: int, times: int = 1) -> None:
        self._faults.setdefault(path, []).extend([errcode] * times)

    def calls_to(self, path: str) -> list[Call]:
        return [c for c in self.calls if c.path == path]

    def cards_to(self, user: str) -> list[dict]:
        return [s.body["template_card"] for s in self.sent if s.touser == user and not s.dropped
                and s.body.get("msgtype") == "template_card"]

    def texts_to(self, user: str) -> list[str]:
        return [s.body["text"]["content"] for s in self.sent if s.touser == user and not s.dropped
                and s.body.get("msgtype") == "text"]

    async def wait_for(self, predicate, timeout: float = 10.0):
        deadline = time.monotonic() + timeout
        while True:
            result = predicate()
            if result:
                return result
            if time.monotonic() > deadline:
                raise AssertionError("fake WeCom: condition not met in time")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), 0.05)
            except TimeoutError:
                pass

    async def wait_for_text(self, user: str, contains: str, timeout: float = 10.0) -> str:
        return await self.wait_for(lambda: next((t for t in self.texts_to(user) if contains in t), None), timeout)

    # ---- server --------------------------------------------------------------------------------
    async def start(self) -> None:
        app = web.Application(client_max_size=4 * 1024 * 1024)
        app.router.add_route("*", "/cgi-bin/{path:.*}", self._dispatch)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        self.base_url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()

    async def _dispatch(self, request: web.Request) -> web.Response:
        path = request.match_info["path"]
        params = dict(request.query)
        body: Any = None
        if request.content_type == "application/json":
            body = await request.json()
        elif request.content_type.startswith("multipart/"):
            reader = await request.multipart()
            part = await reader.next()
            body = {"filename": part.filename, "data": await part.read()}
        call = Call(path, params, body)
        self.calls.append(call)
        try:
            answer = await self._route(path, params, body)
        except _Err as err:
            call.errcode = err.code
            answer = {"errcode": err.code, "errmsg": err.msg}
        self._changed.set()
        if isinstance(answer, bytes):
            return web.Response(body=answer, content_type="image/jpeg")
        return web.json_response(answer)

    async def _route(self, path: str, params: dict, body: Any) -> dict | bytes:
        faults = self._faults.get(path)
        if faults:
            code = faults.pop(0)
            raise _Err(code, "injected")
        if path == "gettoken":
            return self._gettoken(params)
        if path == "webhook/send":
            return self._robot(params, body)
        app = self._app_for(params.get("access_token", ""))
        handlers = {"message/send": self._send, "message/update_template_card": self._update,
                    "media/get": self._media_get, "media/upload": self._media_upload, "agent/get": self._agent,
                    "menu/create": self._menu}
        if path not in handlers:
            raise _Err(60011, f"unknown path {path}")
        return handlers[path](app, params, body)

    def _gettoken(self, params: dict) -> dict:
        app = self.apps.get(params.get("corpid", ""))
        if app is None:
            raise _Err(40013, "invalid corpid")
        if params.get("corpsecret") != app.secret:
            raise _Err(40001, "invalid credential")
        token = "TOKEN-" + secrets.token_hex(12)
        self._tokens[token] = (app.corp_id, False)
        return {"errcode": 0, "errmsg": "ok", "access_token": token, "expires_in": 7200}

    def _app_for(self, token: str) -> FakeApp:
        if token not in self._tokens:
            raise _Err(40014, "invalid access_token")
        corp, expired = self._tokens[token]
        if expired:
            raise _Err(42001, "access_token expired")
        return self.apps[corp]

    def _send(self, app: FakeApp, params: dict, body: dict) -> dict:
        if not isinstance(body, dict) or body.get("agentid") != app.agent_id:
            raise _Err(40056, "invalid agentid")
        user = body.get("touser") or ""
        if user not in app.users:
            return {"errcode": 0, "errmsg": "ok", "invaliduser": user, "msgid": ""}
        kind = body.get("msgtype")
        if kind == "text":
            content = body.get("text", {}).get("content") or ""
            if not content or len(content.encode()) > 2048:
                raise _Err(40058, "text.content exceed max length 2048")
        elif kind == "file":
            if body.get("file", {}).get("media_id") not in self.media:
                raise _Err(40007, "invalid media_id")
        elif kind == "template_card":
            self._check_card(app, body.get("template_card") or {})
        else:
            raise _Err(40008, f"invalid message type {kind}")
        code = "RC" + secrets.token_hex(10) if kind == "template_card" else None
        recent = [t for t in self._member_sends.get(user, []) if t > time.monotonic() - self.member_period]
        dropped = len(recent) >= self.member_limit  # WeCom drops the excess without an error
        self._member_sends[user] = recent + [time.monotonic()]
        if code:
            self._codes[code] = False
        self.sent.append(Sent(user, body, code, dropped))
        answer = {"errcode": 0, "errmsg": "ok", "invaliduser": "", "msgid": "MSG" + secrets.token_hex(6)}
        if code:
            answer["response_code"] = code
        return answer

    def _check_card(self, app: FakeApp, card: dict) -> None:
        if card.get("card_type") != "button_interaction":
            raise _Err(40058, "card_type")
        task_id = card.get("task_id") or ""
        if not TASK_ID.match(task_id):
            raise _Err(40058, "invalid task_id")
        if task_id in app.task_ids:
            raise _Err(40058, "task_id duplicated")
        if not (card.get("main_title") or {}).get("title"):
            raise _Err(40058, "main_title.title missing")
        buttons = card.get("button_list") or []
        if not buttons or len(buttons) > 6:
            raise _Err(40058, "button_list size must be 1..6")
        for button in buttons:
            if button.get("type", 0) == 0 and not (0 < len(str(button.get("key", "")).encode()) <= 1024):
                raise _Err(40058, "button.key")
        selection = card.get("button_selection")
        if selection is not None:
            options = selection.get("option_list") or []
            if not selection.get("question_key") or not 0 < len(options) <= 10:
                raise _Err(40058, "button_selection")
        app.task_ids.add(task_id)

    def _update(self, app: FakeApp, params: dict, body: dict) -> dict:
        code = body.get("response_code")
        if code not in self._codes or self._codes[code]:
            raise _Err(40129, "invalid response_code")  # once only (72 h)
        if body.get("template_card") is None and body.get("button") is None:
            raise _Err(40058, "template_card or button required")
        if body.get("template_card") is not None:
            card = dict(body["template_card"])
            if card.get("card_type") != "button_interaction":
                raise _Err(40058, "card_type")
        self._codes[code] = True
        self.updates.append(body)
        return {"errcode": 0, "errmsg": "ok", "invaliduser": []}

    def issue_response_code(self) -> str:
        """What WeCom puts into a click callback: a fresh, single-use code."""
        code = "RC" + secrets.token_hex(10)
        self._codes[code] = False
        return code

    def _media_get(self, app: FakeApp, params: dict, body: Any) -> bytes:
        data = self.media.get(params.get("media_id", ""))
        if data is None:
            raise _Err(40007, "invalid media_id")
        return data

    def _media_upload(self, app: FakeApp, params: dict, body: Any) -> dict:
        if params.get("type") != "file" or not isinstance(body, dict) or not body.get("data"):
            raise _Err(40004, "invalid media")
        media_id = "UP" + secrets.token_hex(8)
        self.media[media_id] = body["data"]
        return {"errcode": 0, "errmsg": "ok", "type": "file", "media_id": media_id, "created_at": "1"}

    def _agent(self, app: FakeApp, params: dict, body: Any) -> dict:
        if params.get("agentid") != str(app.agent_id):
            raise _Err(40056, "invalid agentid")
        return {"errcode": 0, "errmsg": "ok", "agentid": app.agent_id, "name": "Ozon",
                "allow_userinfos": {"user": [{"userid": u} for u in app.users]}}

    def _menu(self, app: FakeApp, params: dict, body: Any) -> dict:
        """WeCom's 创建菜单 rules: the app's agentid in the query; 1-3 top buttons of at most 16 bytes, each an
        action or up to 5 sub-buttons of at most 40 bytes; a click carries a key of at most 128 bytes."""
        if params.get("agentid") != str(app.agent_id):
            raise _Err(40056, "invalid agentid")
        buttons = (body or {}).get("button") or []
        if not 0 < len(buttons) <= 3 or any(not 0 < len(b.get("name", "").encode()) <= 16 for b in buttons):
            raise _Err(40017, "invalid button")
        for button in buttons:
            subs = button.get("sub_button")
            if subs is not None and not 0 < len(subs) <= 5:
                raise _Err(40023, "invalid sub button size")
            for item in subs if subs is not None else [button]:
                if not 0 < len(item.get("name", "").encode()) <= 40:
                    raise _Err(40018, "invalid button name size")
                if item.get("type") not in ("click", "view", "scancode_push", "scancode_waitmsg", "pic_sysphoto",
                                            "pic_photo_or_album", "pic_weixin", "location_select", "view_miniprogram"):
                    raise _Err(40016, "invalid button type")
                if item.get("type") == "click" and not 0 < len(str(item.get("key", "")).encode()) <= 128:
                    raise _Err(40019, "invalid button key size")
        app.menu = body
        return {"errcode": 0, "errmsg": "ok"}

    def _robot(self, params: dict, body: dict) -> dict:
        key = params.get("key", "")
        if key not in self.robot_keys:
            raise _Err(93000, "invalid webhook url")
        now = time.monotonic()
        recent = [t for t in self._robot_sends.get(key, []) if t > now - self.robot_period]
        if len(recent) >= self.robot_limit:
            raise _Err(45009, "api freq out of limit")
        self._robot_sends[key] = recent + [now]
        if body.get("msgtype") != "markdown":
            raise _Err(40008, "invalid message type")
        content = body.get("markdown", {}).get("content") or ""
        if not content or len(content.encode()) > 4096:
            raise _Err(40058, "markdown.content exceed max length 4096")
        self.robot_messages.append({"key": key, "content": content, "at": now})
        return {"errcode": 0, "errmsg": "ok"}


class _Err(Exception):
    def __init__(self, code: int, msg: str):
        super().__init__(msg)
        self.code = code
        self.msg = msg


def card_json(card: dict) -> str:
    return json.dumps(card, ensure_ascii=False)
