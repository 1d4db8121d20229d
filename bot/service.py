"""The running process behind `ozonbot run`: start-up, readiness and teardown in one place.

Every component is entered on one AsyncExitStack, its close pushed right after it starts, so teardown is
the exact reverse of start-up and a failure half-way through closes only what had started.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web

from bot.app import Services, build_services
from bot.config import Settings
from bot.logsetup import setup_logging
from handlers.action_page import ActionPage
from handlers.key_form import KeyForm
from handlers.kuaidi100_push import Kuaidi100PushReceiver
from handlers.monitoring import Monitoring, count_refusals
from handlers.ozon_push import OzonPushReceiver
from services import metrics

if TYPE_CHECKING:  # at run time each channel is imported only when it is configured
    from handlers.telegram import TelegramChannel
    from handlers.wechat.official import OfficialAccount
    from handlers.wechat.work import WecomChannel

log = logging.getLogger(__name__)

# the collector's youngest generation fills after 700 allocations by default, a few postings' worth: a poll
# of many sellers at once (each with its pages, models and rows alive) would run it thousands of times and
# re-walk every live object in the older generations; measured on a cold poll of 1,000 sellers it was a
# quarter of the CPU (10.3 s with the defaults, 7.7 s tuned)
GC_THRESHOLDS = (10_000, 10, 10)


def tune_gc() -> None:
    """Once per process, after start-up: what start-up built (modules, catalogues, the app) lives as long as
    the process, so it is frozen out of the collector's walks; then the larger thresholds above. The
    thresholds themselves say whether it was done (a second service in one process, as in tests)."""
    if gc.get_threshold() == GC_THRESHOLDS:
        return
    gc.collect()  # only what is alive now gets frozen, never garbage still waiting for a collection
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


@dataclass
class ChannelSet:
    """The inbound surfaces that exist in this process (None: switched off by the configuration)."""

    telegram: TelegramChannel | None = None
    wecom: WecomChannel | None = None
    official: OfficialAccount | None = None
    started: bool = False  # every channel was started

    def health(self) -> dict[str, bool] | None:
        """Each channel and whether it is up now; None while the service is still starting. The WeChat
        channels only receive callbacks and send on demand: they are up while the web server is."""
        if not self.started:
            return None
        up: dict[str, bool] = {}
        if self.telegram is not None:
            app = self.telegram.app
            up["telegram"] = app.running and (app.updater is None or app.updater.running)
        if self.wecom is not None:
            up["wecom"] = True
        if self.official is not None:
            up["official"] = True
        return up


async def run_service(settings: Settings, *, stop: asyncio.Event | None = None,
                      ready: asyncio.Event | None = None) -> int:
    """`ozonbot run` until `stop` is set (default: SIGINT or SIGTERM). `ready` is set once every channel is
    up; the port listens earlier, because a webhook must be reachable before Telegram is told about it."""
    stop = stop or _stop_on_signals()  # first: a SIGTERM during start-up is a clean stop too
    async with AsyncExitStack() as stack:
        services = build_services(settings)
        setup_logging(settings.log_level, services.redactor, fmt=settings.log_format)
        await services.start()  # database, Ozon gateway, leases, scheduler (Services.stop reverses them)
        stack.push_async_callback(services.stop)
        push = OzonPushReceiver(services.sync, allow=settings.ozon_push_allow,
                                trusted_proxies=settings.trusted_proxies)
        stack.push_async_callback(push.close)
        channels = await _open_channels(services, stack)
        runner = web.AppRunner(build_web_app(services, push=push, channels=channels))
        await runner.setup()
        stack.push_async_callback(runner.cleanup)
        await web.TCPSite(runner, settings.http_host, settings.http_port).start()
        if channels.telegram is not None:
            await channels.telegram.start()
            stack.push_async_callback(channels.telegram.stop)
        await services.resume()
        channels.started = True
        tune_gc()
        print(f"ozonbot listening on {settings.http_host}:{settings.http_port}", flush=True)
        if ready is not None:
            ready.set()
        await stop.wait()
    return 0


async def _open_channels(services: Services, stack: AsyncExitStack) -> ChannelSet:
    """Builds each configured channel and registers its sender. Telegram is started later, once
    the port listens; the WeChat channels have nothing to start (their settings per seller live in the
    database), only background work and a session to close."""
    from handlers.wechat.api import WechatHttp
    from handlers.wechat.robot import RobotSender
    from handlers.wechat.work import WecomChannel

    channels = ChannelSet()
    if services.settings.telegram_token:
        from handlers.telegram import TelegramChannel

        channels.telegram = TelegramChannel(services.chat_port())
        services.channels.register(channels.telegram)
    http = WechatHttp(on_secret=services.redactor.add)  # one session for WeCom, the robots and the OA
    stack.push_async_callback(http.close)
    channels.wecom = WecomChannel(services.wechat_port(), http)
    stack.push_async_callback(channels.wecom.close)
    services.channels.register(channels.wecom)
    services.channels.register(RobotSender(services.wechat_port(), http))
    if services.settings.official_account:
        from handlers.wechat.official import OfficialAccount

        channels.official = OfficialAccount(services.wechat_port(), http)
        stack.push_async_callback(channels.official.close)
        services.channels.register(channels.official)
        stack.push_async_callback(_cancelled, asyncio.create_task(channels.official.setup_menu()))
    return channels


async def _cancelled(task: asyncio.Task) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def build_web_app(services: Services, *, push: OzonPushReceiver | None = None,
                  channels: ChannelSet | None = None) -> web.Application:
    """Every inbound route of the process, added here and nowhere else."""
    channels = channels or ChannelSet(started=True)
    app = web.Application(client_max_size=1024 * 1024, middlewares=[count_refusals])
    push = push or OzonPushReceiver(services.sync, allow=services.settings.ozon_push_allow,
                                    trusted_proxies=services.settings.trusted_proxies)
    app.add_routes(push.routes())
    app.add_routes(Kuaidi100PushReceiver(services.first_mile).routes())
    app.add_routes(ActionPage(services.page_port()).routes())
    app.add_routes(KeyForm(links=services.connect_links, conversation=services.conversation,
                           catalogs=services.catalogs, box=services.box, base_url=services.settings.base_url,
                           member=services.desk.member, send=services.channels.send).routes())
    if channels.telegram is not None:
        app.add_routes(channels.telegram.webhook_routes())
    if channels.wecom is not None:
        app.add_routes(channels.wecom.routes())
    if channels.official is not None:
        app.add_routes(channels.official.routes())
    token = services.settings.metrics_token
    app.add_routes(Monitoring(registry=metrics.REGISTRY, sample=metrics.sample_state, clock=services.clock,
                              token=token.get_secret_value() if token else None, channels=channels.health).routes())
    return app


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop
