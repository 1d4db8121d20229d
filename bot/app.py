"""Assembly: builds the services once from Settings and hosts every inbound route on one aiohttp app."""

from __future__ import annotations

import gc
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from aiohttp import web

from bot.config import Settings
from handlers.action_page import ActionPage
from handlers.ozon_push import OzonPushReceiver
from services.actions import ActionCodec
from services.buttons import ButtonRouter
from services.cards import CardCopies, CardRenderer
from services.channels import Channels
from services.desk import Desk
from services.digest import MorningDigest
from services.i18n import Catalogs
from services.key_expiry import KeyExpiry
from services.lease import Lease, process_name
from services.links import ActionLinks
from services.notices import NoticeBoard
from services.orders import OrderSync
from services.outbox import Outbox
from services.ozon.client import RetryPolicy
from services.ozon.gateway import OzonGateway
from services.preferences import Preferences
from services.ratelimit import InboundLimiter
from services.reminders import Reminders
from services.retries import IntentRunner
from services.scheduler import Duties
from services.security import RedactingFilter, SecretBox, load_or_create_key
from services.shipping import Shipping
from services.storage import db
from services.wechat_apps import WechatApps

log = logging.getLogger(__name__)
PUSH_KEY = web.AppKey("push", OzonPushReceiver)


def utcnow() -> datetime:
    return datetime.now(UTC)


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
class Services:
    settings: Settings
    box: SecretBox
    catalogs: Catalogs
    codec: ActionCodec
    channels: Channels
    cards: CardCopies
    outbox: Outbox
    lease: Lease
    gateway: OzonGateway
    sync: OrderSync
    shipping: Shipping
    desk: Desk
    duties: Duties
    runner: IntentRunner
    preferences: Preferences
    buttons: ButtonRouter
    links: ActionLinks
    apps: WechatApps
    clock: Callable[[], datetime]
    limiter: InboundLimiter
    redactor: RedactingFilter = field(default_factory=RedactingFilter)
    stopped: bool = False

    async def start(self, *, schedule: bool = True) -> None:
        await db.connect(self.settings.db_url)
        await self.gateway.start()
        await self.lease.recover_own()
        if schedule:
            self.duties.start()

    async def resume(self) -> None:
        """Work owed from before a restart: sends cut short, undelivered events, unfinished intents, labels."""
        await self.outbox.recover_interrupted()
        await self.outbox.retry_failed(restart=True)
        await self.outbox.dispatch_pending()
        await self.runner.resume()

    async def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        self.duties.stop()
        await self.shipping.close()
        await self.gateway.close()
        await self.lease.release()  # another process takes the sellers over at once
        await db.close()


def build_services(settings: Settings, *, clock: Callable[[], datetime] = utcnow,
                   retry: RetryPolicy | None = None) -> Services:
    key = settings.secret_key.get_secret_value() if settings.secret_key else load_or_create_key(settings.data_dir)
    box = SecretBox(key)
    catalogs = Catalogs()
    codec = ActionCodec(box)
    # a lease outlives a missed heartbeat or two, and runs out well within two poll intervals
    lease = Lease(owner=process_name(settings.db_url), ttl=max(1.0, settings.poll_interval), clock=clock)
    channels = Channels()
    cards = CardCopies(renderer=CardRenderer(codec, clock), channels=channels, catalogs=catalogs)
    outbox = Outbox(channels=channels, cards=cards, catalogs=catalogs, lease=lease, clock=clock,
                    retry_first=timedelta(seconds=settings.alert_retry_first),
                    retry_cap=timedelta(seconds=settings.alert_retry_cap),
                    retry_for=timedelta(seconds=settings.alert_retry_for))
    gateway = OzonGateway(base_url=settings.ozon_api_url, box=box, retry=retry or RetryPolicy(timeout=settings.ozon_timeout))
    sync = OrderSync(gateway, clock=clock, on_events=outbox.dispatch_pending)
    shipping = Shipping(gateway=gateway, channels=channels, cards=cards, catalogs=catalogs, lease=lease,
                        outbox=outbox, clock=clock, label_delay=settings.label_delay)
    desk = Desk(gateway=gateway, box=box, catalogs=catalogs, cards=cards.renderer, clock=clock, default_timezone=settings.timezone,
                default_quiet_hours=settings.quiet_hours)
    reminders = Reminders(outbox=outbox, clock=clock, leads=settings.leads,
                          tracking_after=settings.tracking_reminder_after)
    board = NoticeBoard(channels, catalogs)
    runner = IntentRunner(shipping=shipping, channels=channels, catalogs=catalogs, lease=lease, clock=clock)
    duties = Duties(sync=sync, runner=runner, outbox=outbox, channels=channels, catalogs=catalogs,
                    lease=lease, clock=clock, poll_interval=settings.poll_interval,
                    reminders=reminders, digest=MorningDigest(board=board, clock=clock),
                    key_expiry=KeyExpiry(board=board, clock=clock), tick=settings.tick)
    preferences = Preferences(codec=codec, catalogs=catalogs, default_leads=settings.reminder_leads)
    buttons = ButtonRouter(codec=codec, shipping=shipping, preferences=preferences)
    services = Services(settings=settings, box=box, catalogs=catalogs, codec=codec, channels=channels,
                        cards=cards, outbox=outbox, lease=lease,
                        gateway=gateway, sync=sync, shipping=shipping, desk=desk, duties=duties, runner=runner,
                        preferences=preferences, buttons=buttons,
                        links=ActionLinks(box, settings.base_url, clock), apps=WechatApps(box), clock=clock,
                        limiter=InboundLimiter(per_member=settings.inbound_per_member,
                                               per_chat=settings.inbound_per_chat))
    services.redactor.add(key)
    for secret in (settings.telegram_token, settings.wechat_app_secret, settings.wechat_token,
                   settings.wechat_aes_key):
        if secret:
            services.redactor.add(secret.get_secret_value())
    return services


def build_web_app(services: Services) -> web.Application:
    app = web.Application(client_max_size=1024 * 1024)
    push = OzonPushReceiver(services.sync, allow=services.settings.ozon_push_allow)
    app.add_routes(push.routes())
    app.add_routes(ActionPage(services).routes())
    app.router.add_get("/health", _health)
    app[PUSH_KEY] = push
    return app


async def _health(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})
