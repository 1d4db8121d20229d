"""What each channel is given: the services it uses and its own configuration, nothing more.

`bot/` builds these from the process's services and settings (`Services.page_port()` and friends), so a
reader of a channel sees its real dependencies here, and nothing under `handlers/` imports `bot/`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from services.actions import ActionCodec
from services.buttons import ButtonRouter
from services.cards import CardCopies
from services.conversation import Conversation
from services.desk import Desk
from services.i18n import Catalogs
from services.labels import LabelBatches
from services.links import ActionLinks
from services.picklist import PickLists
from services.ratelimit import InboundLimiter
from services.security import RedactingFilter, SecretBox
from services.shipping import Shipping
from services.wechat_apps import WechatApps


@dataclass(frozen=True)
class PagePort:
    """The action page: the card and the shipping workflow behind signed member links."""

    shipping: Shipping
    desk: Desk
    cards: CardCopies
    catalogs: Catalogs
    codec: ActionCodec
    box: SecretBox
    links: ActionLinks
    picklists: PickLists
    labels: LabelBatches
    buttons: ButtonRouter | None = None  # every verb a posting's card carries (the cancellation decision too)


@dataclass(frozen=True)
class TelegramConfig:
    token: str
    api_url: str
    file_url: str
    webhook_url: str | None = None
    chat_rate: float = 1.0  # messages a second per private chat


@dataclass(frozen=True)
class ChatPort:
    """Telegram: the conversation, the inbound limiter, and what keeps secrets out of logs."""

    conversation: Conversation
    limiter: InboundLimiter
    box: SecretBox
    redactor: RedactingFilter
    catalogs: Catalogs
    config: TelegramConfig


@dataclass(frozen=True)
class OfficialConfig:
    app_id: str
    app_secret: str
    token: str
    aes_key: str | None
    template_id: str | None
    api_url: str


@dataclass(frozen=True)
class WechatPort:
    """The WeCom app, its group robots and the Official Account: one conversation, per-seller app secrets,
    signed links to the action page, and the platforms' base URLs."""

    conversation: Conversation
    desk: Desk
    catalogs: Catalogs
    codec: ActionCodec
    links: ActionLinks
    box: SecretBox
    apps: WechatApps
    redactor: RedactingFilter
    clock: Callable[[], datetime]
    wecom_api_url: str
    official: OfficialConfig | None = None
