"""The one configuration object, built once from the environment (prefix OZONBOT_) and `.env`."""

from __future__ import annotations

from datetime import time, timedelta
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.durations import parse_duration, parse_leads, parse_quiet_hours


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="OZONBOT_", env_file=".env", extra="ignore")

    data_dir: Path = Path("./data")
    database_url: str | None = None
    secret_key: SecretStr | None = None
    ozon_api_url: str = "https://api-seller.ozon.ru"
    ozon_timeout: float = Field(20.0, gt=0)  # seconds per Ozon request attempt, before it is retried
    telegram_token: SecretStr | None = None
    telegram_api_url: str = "https://api.telegram.org/bot"
    telegram_file_url: str = "https://api.telegram.org/file/bot"
    telegram_webhook_url: str | None = None
    # messages a second to one private chat: Telegram answers more with a 429 that pauses the whole bot
    telegram_chat_rate: float = Field(1.0, gt=0)
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    poll_interval: float = Field(60.0, gt=0)
    duty_tick: float | None = Field(None, gt=0)  # how often time-based jobs look at the clock (None: derived)
    reminder_leads: str = "24h,4h,1h"
    quiet_hours: str = "22:00-08:00"
    label_delay: float = Field(45.0, ge=0)
    # the font of printed PDFs (pick lists): one that has Chinese, Cyrillic and Latin (Debian fonts-wqy-microhei)
    pdf_font: str = "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"
    # buyers' cancellation requests have no push: seconds between reads of them, per seller (with the orders)
    cancel_poll_interval: float = Field(120.0, gt=0)
    # seconds before Ozon's auto-approval when an unanswered request is reminded
    cancel_remind_before: float = Field(7200.0, gt=0)
    tracking_reminder: str = "2h"
    timezone: str = "Asia/Shanghai"
    wecom_api_url: str = "https://qyapi.weixin.qq.com"
    wechat_api_url: str = "https://api.weixin.qq.com"
    wechat_app_id: str | None = None
    wechat_app_secret: SecretStr | None = None
    wechat_token: SecretStr | None = None
    wechat_aes_key: SecretStr | None = None
    wechat_template_id: str | None = None
    kuaidi100_api_url: str = "https://poll.kuaidi100.com"  # first-mile tracking (subscribe, query)
    # first-mile alerts: no pickup scan this long after the hand-over, a trace that has not moved this long
    kuaidi100_no_pickup: str = "24h"
    kuaidi100_frozen: str = "24h"
    public_url: str | None = None
    # inbound rate limits: updates a minute per person and per chat (0 switches a limit off)
    inbound_per_member: int = Field(30, ge=0)
    inbound_per_chat: int = Field(60, ge=0)
    # optional allow-list for Ozon pushes: comma-separated networks (Ozon's published ranges); empty = any
    ozon_push_allow: str = ""
    # networks of the reverse proxies in front of the bot: behind one, the push allow-list reads the sender
    # from X-Forwarded-For (only as these proxies wrote it); empty = the TCP peer is the sender
    trusted_proxies: str = ""
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = "text"  # json: one JSON object a line
    metrics_token: SecretStr | None = None  # bearer token for /metrics; unset: loopback, unproxied only
    # a failed alert is tried again after alert_retry_first seconds, doubling up to alert_retry_cap, for as
    # long as it matters and at most alert_retry_for seconds (a day) after its first failure
    alert_retry_first: float = Field(15.0, gt=0)
    alert_retry_cap: float = Field(300.0, gt=0)
    alert_retry_for: float = Field(86400.0, gt=0)

    @field_validator("reminder_leads")
    @classmethod
    def _check_leads(cls, value: str) -> str:
        parse_leads(value)
        return value

    @field_validator("tracking_reminder", "kuaidi100_no_pickup", "kuaidi100_frozen")
    @classmethod
    def _check_tracking_reminder(cls, value: str) -> str:
        parse_duration(value)
        return value

    @field_validator("quiet_hours")
    @classmethod
    def _check_quiet(cls, value: str) -> str:
        parse_quiet_hours(value)
        return value

    @field_validator("timezone")
    @classmethod
    def _check_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo

        ZoneInfo(value)
        return value

    @property
    def official_account(self) -> bool:
        """The Official Account channel is on when its id, secret and callback token are all set."""
        return bool(self.wechat_app_id and self.wechat_app_secret and self.wechat_token)

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite://{self.data_dir}/ozonbot.sqlite3"

    @property
    def leads(self) -> list[timedelta]:
        return parse_leads(self.reminder_leads)

    @property
    def tick(self) -> float:
        """How often reminders, digest and retries look at the clock: often enough that the shortest lead
        is not late by more than a third of itself, and never slower than the poll, within 1..30 s."""
        if self.duty_tick:
            return self.duty_tick
        shortest = min(self.leads).total_seconds() / 3
        return max(1.0, min(30.0, self.poll_interval, shortest))

    @property
    def tracking_reminder_after(self) -> timedelta:
        return parse_duration(self.tracking_reminder)

    @property
    def quiet(self) -> tuple[time, time] | None:
        return parse_quiet_hours(self.quiet_hours)

    @property
    def base_url(self) -> str:
        """Public base of our own HTTP server, used in links we hand out."""
        return (self.public_url or f"http://{self.http_host}:{self.http_port}").rstrip("/")
