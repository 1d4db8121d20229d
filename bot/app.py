"""Assembly: builds the services once from Settings (the running process around them is bot/service.py)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from bot.config import Settings
from handlers.ports import ChatPort, OfficialConfig, PagePort, TelegramConfig, WechatPort
from services import metrics
from services.actions import ActionCodec
from services.background import Background
from services.buttons import ButtonRouter
from services.cancellations import Cancellations
from services.cards import CardCopies, CardRenderer
from services.channels import Channels
from services.conversation import Conversation
from services.desk import Desk
from services.digest import MorningDigest
from services.durations import parse_duration
from services.error_index import ErrorIndexDesk
from services.firstmile import FirstMile
from services.i18n import Catalogs
from services.key_expiry import KeyExpiry
from services.labels import LabelBatches
from services.lease import Lease, process_name
from services.links import ActionLinks, ConnectLinks
from services.members import Roster
from services.notices import NoticeBoard
from services.orders import OrderSync
from services.outbox import Outbox
from services.ozon.client import RetryPolicy
from services.picklist import PickLists
from services.preferences import Preferences
from services.ratelimit import InboundLimiter
from services.reminders import Reminders
from services.retries import IntentRunner
from services.scheduler import Duties
from services.security import RedactingFilter, SecretBox, load_or_create_key
from services.sellers import OzonGateway
from services.shipping import Shipping
from services.stock import StockDesk
from services.storage import db
from services.wechat_apps import WechatApps

log = logging.getLogger(__name__)


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Services:
    settings: Settings
    box: SecretBox
    catalogs: Catalogs
    codec: ActionCodec
    channels: Channels
    cards: CardCopies
    cancellations: Cancellations
    stock: StockDesk
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
    conversation: Conversation
    picklists: PickLists
    labels: LabelBatches
    background: Background
    connect_links: ConnectLinks
    first_mile: FirstMile
    redactor: RedactingFilter = field(default_factory=RedactingFilter)
    stopped: bool = False
    _stack: AsyncExitStack = field(default_factory=AsyncExitStack, repr=False)

    async def start(self, *, schedule: bool = True, claims: bool = True) -> None:
        """Each part's close is pushed right after it starts: `stop` is the exact reverse, and a start that
        fails half-way closes what had started. `claims=False` (an `ozonbot seller …` command beside a live
        service) neither takes over nor releases leases and claims: on SQLite every process has one owner
        name, so they would be the live service's (M3)."""
        async with AsyncExitStack() as stack:
            await db.connect(self.settings.db_url)
            stack.push_async_callback(db.close)
            await self.gateway.start()
            stack.push_async_callback(self.gateway.close)
            await self.first_mile.start()
            stack.push_async_callback(self.first_mile.close)
            if claims:
                await self.lease.recover_own()
                stack.push_async_callback(self.lease.release)  # another process takes the sellers over at once
            stack.push_async_callback(self.shipping.close)  # label deliveries a press started
            stack.push_async_callback(self.background.close)  # first polls a connect started
            stack.callback(self.duties.stop)  # also when a caller starts the scheduler later (tests)
            if schedule:
                self.duties.start()
            self._stack = stack.pop_all()

    # ---- what each channel is given (handlers/ports.py): its services and its own configuration --------------
    def page_port(self) -> PagePort:
        return PagePort(shipping=self.shipping, desk=self.desk, cards=self.cards, catalogs=self.catalogs,
                        codec=self.codec, box=self.box, links=self.links,
                        picklists=self.picklists, labels=self.labels, buttons=self.buttons)

    def chat_port(self) -> ChatPort:
        s = self.settings
        config = TelegramConfig(token=s.telegram_token.get_secret_value() if s.telegram_token else "",
                                api_url=s.telegram_api_url, file_url=s.telegram_file_url,
                                webhook_url=s.telegram_webhook_url, chat_rate=s.telegram_chat_rate)
        return ChatPort(conversation=self.conversation, limiter=self.limiter, box=self.box, redactor=self.redactor,
                        catalogs=self.catalogs, config=config)

    def wechat_port(self) -> WechatPort:
        s = self.settings
        official = OfficialConfig(
            app_id=s.wechat_app_id or "", app_secret=s.wechat_app_secret.get_secret_value(),
            token=s.wechat_token.get_secret_value(),
            aes_key=s.wechat_aes_key.get_secret_value() if s.wechat_aes_key else None,
            template_id=s.wechat_template_id, api_url=s.wechat_api_url) if s.official_account else None
        return WechatPort(conversation=self.conversation, desk=self.desk, catalogs=self.catalogs, codec=self.codec,
                          links=self.links, box=self.box, apps=self.apps, redactor=self.redactor, clock=self.clock,
                          wecom_api_url=s.wecom_api_url, official=official)

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
        await self._stack.aclose()


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
    gateway = OzonGateway(base_url=settings.ozon_api_url, box=box, trace_configs=[metrics.ozon_trace()],
                          retry=retry or RetryPolicy(timeout=settings.ozon_timeout, on_retry=metrics.ozon_retry))
    sync = OrderSync(gateway, clock=clock, on_events=lambda: outbox.dispatch_pending())
    cancellations = Cancellations(gateway=gateway, sync=sync, channels=channels, catalogs=catalogs, codec=codec,
                                  lease=lease, clock=clock, on_events=lambda: outbox.dispatch_pending(),
                                  poll_every=timedelta(seconds=settings.cancel_poll_interval),
                                  remind_before=timedelta(seconds=settings.cancel_remind_before))
    outbox = Outbox(cancellations=cancellations, channels=channels, cards=cards, catalogs=catalogs, lease=lease,
                    clock=clock,
                    retry_first=timedelta(seconds=settings.alert_retry_first),
                    retry_cap=timedelta(seconds=settings.alert_retry_cap),
                    retry_for=timedelta(seconds=settings.alert_retry_for))
    first_mile = FirstMile(box=box, api_url=settings.kuaidi100_api_url, callback_base=settings.base_url, clock=clock,
                           on_change=cards.refresh, on_events=outbox.dispatch_pending,
                           no_pickup_after=parse_duration(settings.kuaidi100_no_pickup),
                           frozen_after=parse_duration(settings.kuaidi100_frozen))
    shipping = Shipping(gateway=gateway, channels=channels, cards=cards, catalogs=catalogs, lease=lease,
                        outbox=outbox, clock=clock, label_delay=settings.label_delay, watch=first_mile.watch)
    desk = Desk(gateway=gateway, box=box, catalogs=catalogs, cards=cards.renderer, channels=channels, clock=clock, default_timezone=settings.timezone,
                default_quiet_hours=settings.quiet_hours)
    reminders = Reminders(outbox=outbox, clock=clock, leads=settings.leads,
                          tracking_after=settings.tracking_reminder_after)
    board = NoticeBoard(channels, catalogs)
    stock = StockDesk(gateway=gateway, codec=codec, catalogs=catalogs, channels=channels, clock=clock)
    runner = IntentRunner(shipping=shipping, channels=channels, catalogs=catalogs, lease=lease, clock=clock,
                          cancellations=cancellations)
    duties = Duties(sync=sync, runner=runner, outbox=outbox, channels=channels, catalogs=catalogs,
                    lease=lease, clock=clock, poll_interval=settings.poll_interval,
                    reminders=reminders, digest=MorningDigest(board=board, clock=clock, no_pickup_after=first_mile.no_pickup_after,
                                         frozen_after=first_mile.frozen_after),
                    key_expiry=KeyExpiry(board=board, clock=clock), tick=settings.tick, first_mile=first_mile,
                    cancellations=cancellations, stock=stock)
    preferences = Preferences(codec=codec, catalogs=catalogs, default_leads=settings.reminder_leads)
    roster = Roster(codec=codec, catalogs=catalogs, send=channels.send)
    buttons = ButtonRouter(codec=codec, shipping=shipping, preferences=preferences, roster=roster,
                           cancellations=cancellations, stock=stock)
    redactor, background = RedactingFilter(), Background()
    connect_links = ConnectLinks(box, settings.base_url, clock)
    links = ActionLinks(box, settings.base_url, clock)
    picklists = PickLists(gateway=gateway, catalogs=catalogs, clock=clock, font=settings.pdf_font)
    labels = LabelBatches(gateway=gateway, catalogs=catalogs, clock=clock)
    conversation = Conversation(
        desk=desk, shipping=shipping, buttons=buttons, preferences=preferences, roster=roster, catalogs=catalogs,
        first_poll=sync.poll, background=background, default_zone=settings.timezone, on_secret=redactor.add,
        key_form_url=lambda caller: connect_links.url(caller.surface.channel, caller.external_id, caller.chat_id,
                                                      caller.tr.locale),
        stock=stock, error_index=ErrorIndexDesk(gateway=gateway, catalogs=catalogs, clock=clock),
        invite_qr_url=(lambda code: f"{settings.base_url}/wechat/qr/{code}") if settings.official_account else None,
        picklists=picklists, labels=labels, file_url=lambda member, name: f"{links.url(member.id)}/{name}",
        inbound=first_mile.add_inbound)
    services = Services(settings=settings, box=box, catalogs=catalogs, codec=codec, channels=channels,
                        cards=cards, cancellations=cancellations, stock=stock, outbox=outbox, lease=lease,
                        gateway=gateway, sync=sync, shipping=shipping, desk=desk, duties=duties, runner=runner,
                        preferences=preferences, buttons=buttons,
                        links=links, apps=WechatApps(box), clock=clock,
                        limiter=InboundLimiter(per_member=settings.inbound_per_member,
                                               per_chat=settings.inbound_per_chat),
                        conversation=conversation, picklists=picklists, labels=labels, background=background, redactor=redactor,
                        connect_links=connect_links, first_mile=first_mile)
    services.redactor.add(key)
    for secret in (settings.telegram_token, settings.wechat_app_secret, settings.wechat_token,
                   settings.wechat_aes_key, settings.metrics_token):
        if secret:
            services.redactor.add(secret.get_secret_value())
    return services
