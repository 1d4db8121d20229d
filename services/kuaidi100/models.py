"""Kuaidi100 payloads, typed and tolerant: every field may be missing, unknown ones are kept, and the
numbers Kuaidi100 sends as strings ("state": "1") are read either way."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import IntEnum
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["PushNotification", "SubscribeRequest", "Trace", "TraceEvent", "TraceState"]

BEIJING = ZoneInfo("Asia/Shanghai")  # Kuaidi100's times are Beijing wall-clock times


class TraceState(IntEnum):
    IN_TRANSIT = 0  # 在途
    PICKED_UP = 1  # 揽收
    PROBLEM = 2  # 疑难
    SIGNED = 3  # 签收
    REFUSED = 4  # 退签
    DELIVERING = 5  # 派件
    RETURNED = 6  # 退回
    FORWARDED = 7  # 转投

    @property
    def troubled(self) -> bool:
        return self in (TraceState.PROBLEM, TraceState.REFUSED, TraceState.RETURNED)


def _state(value: object) -> TraceState | None:
    try:
        return TraceState(int(str(value)))
    except (TypeError, ValueError):
        return None


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class TraceEvent(_Model):
    context: str = ""
    time: str = ""
    ftime: str = ""
    area_name: str = Field("", alias="areaName")
    area_code: str = Field("", alias="areaCode")
    status: str = ""
    status_code: str = Field("", alias="statusCode")

    @field_validator("context", "time", "ftime", "area_name", "area_code", "status", "status_code",
                     mode="before")
    @classmethod
    def _text(cls, v: object) -> str:
        return "" if v is None else str(v)

    @property
    def at(self) -> datetime | None:
        """The scan time in UTC (Kuaidi100 sends Beijing time without a zone)."""
        for text in (self.ftime, self.time):
            try:
                return datetime.strptime(text.strip(), "%Y-%m-%d %H:%M:%S").replace(tzinfo=BEIJING).astimezone(UTC)
            except ValueError:
                continue
        return None


class Trace(_Model):
    """``lastResult`` of a push, or the answer of a real-time query."""

    state_raw: str = Field("", alias="state")
    ischeck: str = ""
    com: str = ""
    nu: str = ""
    data: list[TraceEvent] = Field(default_factory=list)  # newest first

    @field_validator("state_raw", "ischeck", "com", "nu", mode="before")
    @classmethod
    def _text(cls, v: object) -> str:
        return "" if v is None else str(v)

    @field_validator("data", mode="before")
    @classmethod
    def _events(cls, v: object) -> list:
        return [e for e in v if isinstance(e, dict)] if isinstance(v, list) else []

    @property
    def state(self) -> TraceState | None:
        return _state(self.state_raw)

    @property
    def signed(self) -> bool:
        return self.ischeck == "1" or self.state == TraceState.SIGNED


class PushNotification(_Model):
    status: str = ""  # polling | shutdown | abort | updateall
    message: str = ""
    auto_check: str = Field("", alias="autoCheck")
    com_old: str = Field("", alias="comOld")
    com_new: str = Field("", alias="comNew")
    last_result: Trace = Field(default_factory=Trace, alias="lastResult")

    @field_validator("status", "message", "auto_check", "com_old", "com_new", mode="before")
    @classmethod
    def _text(cls, v: object) -> str:
        return "" if v is None else str(v)

    @field_validator("last_result", mode="before")
    @classmethod
    def _trace(cls, v: object) -> object:
        return v if isinstance(v, dict) else {}

    @property
    def aborted(self) -> bool:
        return self.status == "abort"


class SubscribeRequest(BaseModel):
    company: str
    number: str
    callback_url: str
    salt: str = ""
    phone: str = ""  # SF and ZTO need the phone on the waybill or its last 4 digits
    from_: str = ""
    to: str = ""
    auto_com: bool = False  # company left empty: Kuaidi100 detects the courier (only when it is unknown)
