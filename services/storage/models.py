"""Durable state. Every dedupe and intent is a unique constraint, so it holds across restarts and processes.

The state columns hold the StrEnums of services.storage.states as plain CharFields: tortoise's CharEnumField
would be a schema change to its migrations (another field type and a column comment listing the values)."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model

from services.security import encrypted_field
from services.storage.states import (
    CancelState,
    InboundState,
    IntentState,
    KeyState,
    LabelState,
    NotificationState,
    PendingKind,
    Role,
    Stage,
    StockState,
    WaybillRole,
    WaybillState,
)


class Seller(Model):
    id = fields.IntField(primary_key=True)
    name = fields.CharField(max_length=128, default="")
    client_id = fields.CharField(max_length=32, unique=True)
    api_key_enc = fields.TextField()
    key_expires_at = fields.DatetimeField(null=True)
    key_state = fields.CharField(max_length=16, default=KeyState.OK)  # KeyState
    push_token = fields.CharField(max_length=64, unique=True)
    timezone = fields.CharField(max_length=64, default="Asia/Shanghai")
    quiet_hours = fields.CharField(max_length=16, default="22:00-08:00")
    reminder_leads = fields.CharField(max_length=64, null=True)
    digest_time = fields.CharField(max_length=5, default="08:00")
    default_courier = fields.CharField(max_length=16, null=True)
    warehouses = fields.JSONField(default=list)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "seller"


encrypted_field("seller", "api_key_enc")


class Member(Model):
    """A person on a seller's desk, or a group chat that receives the desk's alerts (role group)."""

    id = fields.IntField(primary_key=True)
    seller = fields.ForeignKeyField("ozonbot.Seller", related_name="members", on_delete=fields.CASCADE)
    channel = fields.CharField(max_length=16)  # telegram | wecom | wechat | console
    external_id = fields.CharField(max_length=128)
    chat_id = fields.CharField(max_length=128, null=True)  # where alerts go; None = reachable only in a group
    role = fields.CharField(max_length=16, default=Role.PACKER)  # Role
    name = fields.CharField(max_length=128, default="")
    locale = fields.CharField(max_length=8, default="zh_CN")
    timezone = fields.CharField(max_length=64, null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "member"
        unique_together = (("seller", "channel", "external_id"),)


class Posting(Model):
    id = fields.IntField(primary_key=True)
    seller = fields.ForeignKeyField("ozonbot.Seller", related_name="postings", on_delete=fields.CASCADE)
    posting_number = fields.CharField(max_length=64, db_index=True)
    order_number = fields.CharField(max_length=64, default="", db_index=True)
    status = fields.CharField(max_length=64, default="")
    substatus = fields.CharField(max_length=64, default="")
    flow = fields.CharField(max_length=32, default="")
    shipment_date = fields.DatetimeField(null=True, db_index=True)
    tracking_number = fields.CharField(max_length=64, default="", db_index=True)
    snapshot = fields.JSONField(default=dict)
    # our side of the workflow
    stage = fields.CharField(max_length=16, default=Stage.NEW)  # Stage
    courier = fields.CharField(max_length=16, null=True)
    waybill = fields.CharField(max_length=64, null=True, db_index=True)
    packed_at = fields.DatetimeField(null=True)
    packed_by = fields.ForeignKeyField("ozonbot.Member", null=True, related_name="packed_postings", on_delete=fields.SET_NULL)
    acted_by = fields.ForeignKeyField("ozonbot.Member", null=True, related_name="acted_postings", on_delete=fields.SET_NULL)
    label_state = fields.CharField(max_length=16, default=LabelState.NONE)  # LabelState
    label_task_id = fields.BigIntField(null=True)
    label_url = fields.TextField(null=True)
    # the newest first-mile scan of its watched waybills (services.firstmile), shown on the card and in /status
    last_scan_at = fields.DatetimeField(null=True)
    last_scan = fields.TextField(default="")
    inbound = fields.CharField(max_length=16, default=InboundState.NONE)  # InboundState: the supplier's parcels (无货源)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "posting"
        unique_together = (("seller", "posting_number"),)


class Event(Model):
    """Outbox of domain events: one row per posting and event, ever. The unique key is the dedupe."""

    id = fields.IntField(primary_key=True)
    posting = fields.ForeignKeyField("ozonbot.Posting", related_name="events", on_delete=fields.CASCADE)
    kind = fields.CharField(max_length=32)  # EventKind
    key = fields.CharField(max_length=64, default="")
    payload = fields.JSONField(default=dict)
    created_at = fields.DatetimeField(auto_now_add=True)
    dispatched_at = fields.DatetimeField(null=True, db_index=True)

    class Meta:
        table = "event"
        unique_together = (("posting", "kind", "key"),)


class Notification(Model):
    """One event delivered to one member: written before sending, so a restart never sends it twice."""

    id = fields.IntField(primary_key=True)
    event = fields.ForeignKeyField("ozonbot.Event", related_name="notifications", on_delete=fields.CASCADE)
    member = fields.ForeignKeyField("ozonbot.Member", related_name="notifications", on_delete=fields.CASCADE)
    # NotificationState; a failed one is tried again at next_attempt_at
    state = fields.CharField(max_length=16, default=NotificationState.SENDING)
    attempts = fields.IntField(default=0)
    error = fields.TextField(null=True)
    failed_since = fields.DatetimeField(null=True)  # the first failed attempt: how late a delivery is
    next_attempt_at = fields.DatetimeField(null=True)  # a failed one's backoff
    # the process sending it, until when (renewed while it lives): a lapsed claim marks a crash mid-send
    claimed_by = fields.CharField(max_length=64, null=True)
    claim_until = fields.DatetimeField(null=True)
    resent = fields.BooleanField(default=False)  # re-sent with a marker after a crash mid-send
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "notification"
        unique_together = (("event", "member"),)
        indexes = (("state", "next_attempt_at"), ("state", "claim_until"))  # the retry and recovery scans


class AlertMessage(Model):
    """The message that shows a posting's card in one member's chat, so every copy can be edited."""

    id = fields.IntField(primary_key=True)
    posting = fields.ForeignKeyField("ozonbot.Posting", related_name="alerts", on_delete=fields.CASCADE)
    member = fields.ForeignKeyField("ozonbot.Member", related_name="alerts", on_delete=fields.CASCADE)
    message_ref = fields.CharField(max_length=128)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "alert_message"
        unique_together = (("posting", "member"),)


class Intent(Model):
    """An Ozon mutation, recorded before it is sent and completed after. Unfinished ones are resumed."""

    id = fields.IntField(primary_key=True)
    posting = fields.ForeignKeyField("ozonbot.Posting", related_name="intents", on_delete=fields.CASCADE)
    kind = fields.CharField(max_length=16)  # IntentKind
    key = fields.CharField(max_length=64, default="")
    payload = fields.JSONField(default=dict)
    state = fields.CharField(max_length=16, default=IntentState.PENDING, db_index=True)  # IntentState
    attempts = fields.IntField(default=0)
    last_error = fields.TextField(null=True)
    reported = fields.BooleanField(default=False)
    member = fields.ForeignKeyField("ozonbot.Member", null=True, related_name="intents", on_delete=fields.SET_NULL)
    # the retry time, or while claimed_by is set the end of the running process's claim (see services.lease)
    next_attempt_at = fields.DatetimeField(null=True)
    claimed_by = fields.CharField(max_length=64, null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "intent"
        unique_together = (("posting", "kind", "key"),)


class PollState(Model):
    seller = fields.OneToOneField("ozonbot.Seller", related_name="poll_state", on_delete=fields.CASCADE)
    last_poll_at = fields.DatetimeField(null=True)
    last_success_at = fields.DatetimeField(null=True)
    consecutive_errors = fields.IntField(default=0)
    next_poll_at = fields.DatetimeField(null=True)
    last_error = fields.TextField(null=True)
    lease_owner = fields.CharField(max_length=64, null=True)
    lease_until = fields.DatetimeField(null=True)
    fingerprint = fields.CharField(max_length=64, null=True)

    class Meta:
        table = "poll_state"


class Invite(Model):
    id = fields.IntField(primary_key=True)
    seller = fields.ForeignKeyField("ozonbot.Seller", related_name="invites", on_delete=fields.CASCADE)
    code = fields.CharField(max_length=32, unique=True)
    role = fields.CharField(max_length=16, default=Role.PACKER)  # Role
    created_by = fields.ForeignKeyField("ozonbot.Member", null=True, related_name="invites_created", on_delete=fields.SET_NULL)
    expires_at = fields.DatetimeField()
    used_by = fields.ForeignKeyField("ozonbot.Member", null=True, related_name="invites_used", on_delete=fields.SET_NULL)
    used_at = fields.DatetimeField(null=True)

    class Meta:
        table = "invite"


class PendingInput(Model):
    """What the bot is waiting for from a member (e.g. a waybill number for a posting): survives restarts."""

    member = fields.OneToOneField("ozonbot.Member", related_name="pending", on_delete=fields.CASCADE)
    posting = fields.ForeignKeyField("ozonbot.Posting", related_name="pending_for", on_delete=fields.CASCADE)
    kind = fields.CharField(max_length=16, default=PendingKind.WAYBILL)  # PendingKind
    value = fields.CharField(max_length=64, null=True)
    created_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "pending_input"


class LanguagePref(Model):
    """A person's chosen language, kept even before they belong to a desk (/lang before /connect)."""

    id = fields.IntField(primary_key=True)
    channel = fields.CharField(max_length=16)
    external_id = fields.CharField(max_length=128)
    locale = fields.CharField(max_length=8)

    class Meta:
        table = "language_pref"
        unique_together = (("channel", "external_id"),)


class Notice(Model):
    """A desk message that is not about one posting (morning digest, key expiry), sent once per member and key."""

    id = fields.IntField(primary_key=True)
    member = fields.ForeignKeyField("ozonbot.Member", related_name="notices", on_delete=fields.CASCADE)
    kind = fields.CharField(max_length=32)  # NoticeKind
    key = fields.CharField(max_length=64)
    state = fields.CharField(max_length=16, default=NotificationState.SENDING)  # NotificationState
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "notice"
        unique_together = (("member", "kind", "key"),)


class WecomApp(Model):
    """A seller's WeCom self-built app. The members of the app are the desk of the seller. Secrets are SecretBox tokens."""

    id = fields.IntField(primary_key=True)
    seller = fields.OneToOneField("ozonbot.Seller", related_name="wecom_app", on_delete=fields.CASCADE)
    tenant = fields.CharField(max_length=64, unique=True)  # the path segment of the callback URL
    corp_id = fields.CharField(max_length=64)
    agent_id = fields.BigIntField()
    secret_enc = fields.TextField()
    token_enc = fields.TextField()
    aes_key_enc = fields.TextField()
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "wecom_app"
        unique_together = (("corp_id", "agent_id"),)


encrypted_field("wecom_app", "secret_enc")
encrypted_field("wecom_app", "token_enc")
encrypted_field("wecom_app", "aes_key_enc")


class GroupRobot(Model):
    """A WeCom group robot that receives the alerts of a desk (push only). The webhook key is a SecretBox token."""

    id = fields.IntField(primary_key=True)
    member = fields.OneToOneField("ozonbot.Member", related_name="robot", on_delete=fields.CASCADE)
    key_enc = fields.TextField()
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "group_robot"


encrypted_field("group_robot", "key_enc")


class InboundCallback(Model):
    """A WeChat callback already taken in (message id or event key): retries from WeChat are dropped by the key."""

    id = fields.IntField(primary_key=True)
    source = fields.CharField(max_length=80)  # wecom:<tenant> | wechat
    key = fields.CharField(max_length=190)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "inbound_callback"
        unique_together = (("source", "key"),)


class WechatQrCode(Model):
    """The Official Account binding QR code made for an invite (scene bind_<code>), reused until it expires."""

    id = fields.IntField(primary_key=True)
    invite = fields.OneToOneField("ozonbot.Invite", related_name="qr_code", on_delete=fields.CASCADE)
    ticket = fields.CharField(max_length=256)
    url = fields.TextField()
    expires_at = fields.DatetimeField()

    class Meta:
        table = "wechat_qr_code"


class WecomCard(Model):
    """A template card sent to one WeCom member. A click brings a single-use response code that pays for
    the next update of that card, kept here so any process can spend it exactly once."""

    id = fields.IntField(primary_key=True)
    app = fields.ForeignKeyField("ozonbot.WecomApp", related_name="cards", on_delete=fields.CASCADE)
    member = fields.ForeignKeyField("ozonbot.Member", related_name="wecom_cards", on_delete=fields.CASCADE)
    posting = fields.ForeignKeyField("ozonbot.Posting", null=True, related_name="wecom_cards",
                                     on_delete=fields.CASCADE)
    task_id = fields.CharField(max_length=128, unique=True)
    response_code = fields.TextField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "wecom_card"


class CancelRequest(Model):
    """A request by the buyer to cancel an rFBS posting, as polled from Ozon, decided here or by the Ozon clock."""

    id = fields.IntField(primary_key=True)
    seller = fields.ForeignKeyField("ozonbot.Seller", related_name="cancel_requests", on_delete=fields.CASCADE)
    posting = fields.ForeignKeyField("ozonbot.Posting", related_name="cancel_requests", on_delete=fields.CASCADE)
    cancellation_id = fields.BigIntField()
    state = fields.CharField(max_length=16, default=CancelState.OPEN)  # CancelState
    reason = fields.CharField(max_length=255, default="")
    message = fields.TextField(default="")
    auto_approve_at = fields.DatetimeField(null=True)
    comment = fields.TextField(default="")  # the reason given to Ozon with a rejection
    decided_by = fields.ForeignKeyField("ozonbot.Member", null=True, related_name="cancel_decisions",
                                        on_delete=fields.SET_NULL)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "cancel_request"
        unique_together = (("seller", "cancellation_id"),)


class CancelCard(Model):
    """The message that shows a cancellation request in the chat of one member, so every copy can be edited."""

    id = fields.IntField(primary_key=True)
    request = fields.ForeignKeyField("ozonbot.CancelRequest", related_name="cards", on_delete=fields.CASCADE)
    member = fields.ForeignKeyField("ozonbot.Member", related_name="cancel_cards", on_delete=fields.CASCADE)
    message_ref = fields.CharField(max_length=128)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "cancel_card"
        unique_together = (("request", "member"),)


class TrackingAccount(Model):
    """A seller's Kuaidi100 account (first-mile tracking). The key is a SecretBox token, and the token is the
    unguessable part of the seller's callback URL /kuaidi100/<token>."""

    id = fields.IntField(primary_key=True)
    seller = fields.OneToOneField("ozonbot.Seller", related_name="tracking_account", on_delete=fields.CASCADE)
    key_enc = fields.TextField()
    customer = fields.CharField(max_length=64)
    phone_tail = fields.CharField(max_length=16, default="")  # SF and ZTO answer only with the phone's last 4
    token = fields.CharField(max_length=64, unique=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "tracking_account"


encrypted_field("tracking_account", "key_enc")


class Waybill(Model):
    """A domestic waybill watched through Kuaidi100 push: subscribed once (retried until Kuaidi100 takes it),
    with its own random salt (a SecretBox token) that signs every push about it."""

    id = fields.IntField(primary_key=True)
    seller = fields.ForeignKeyField("ozonbot.Seller", related_name="waybills", on_delete=fields.CASCADE)
    posting = fields.ForeignKeyField("ozonbot.Posting", null=True, related_name="waybills", on_delete=fields.CASCADE)
    role = fields.CharField(max_length=16, default=WaybillRole.OUTBOUND)  # WaybillRole
    courier = fields.CharField(max_length=16)
    company = fields.CharField(max_length=32)  # the Kuaidi100 courier code
    number = fields.CharField(max_length=64)
    salt_enc = fields.TextField()
    state = fields.CharField(max_length=16, default=WaybillState.PENDING, db_index=True)  # WaybillState
    attempts = fields.IntField(default=0)
    next_attempt_at = fields.DatetimeField(null=True)
    last_error = fields.TextField(null=True)
    subscribed_at = fields.DatetimeField(null=True)
    renewed = fields.BooleanField(default=False)  # an aborted subscription is renewed once
    trace_state = fields.IntField(null=True)  # Kuaidi100's state of the newest scan
    last_scan_at = fields.DatetimeField(null=True)
    last_context = fields.TextField(default="")
    last_area = fields.CharField(max_length=128, default="")
    since = fields.DatetimeField(null=True)  # when the desk recorded it (the service's clock): "no pickup" counts from it
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "waybill"
        unique_together = (("seller", "company", "number"),)


encrypted_field("waybill", "salt_enc")


class TraceEvent(Model):
    """One scan of a waybill's trace, stored once however often Kuaidi100 pushes it (key: its digest)."""

    id = fields.IntField(primary_key=True)
    waybill = fields.ForeignKeyField("ozonbot.Waybill", related_name="trace", on_delete=fields.CASCADE)
    key = fields.CharField(max_length=40)
    at = fields.DatetimeField(null=True)
    context = fields.TextField(default="")
    area = fields.CharField(max_length=128, default="")
    state = fields.IntField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "trace_event"
        unique_together = (("waybill", "key"),)


class StockItem(Model):
    """One product in one FBS warehouse as last read or set, and the change still owed to Ozon (30 s window)."""

    id = fields.IntField(primary_key=True)
    seller = fields.ForeignKeyField("ozonbot.Seller", related_name="stock_items", on_delete=fields.CASCADE)
    sku = fields.BigIntField()
    offer_id = fields.CharField(max_length=64, default="")
    product_id = fields.BigIntField(null=True)
    warehouse_id = fields.BigIntField()
    warehouse_name = fields.CharField(max_length=128, default="")
    free = fields.IntField(null=True)
    reserved = fields.IntField(null=True)
    present = fields.IntField(null=True)
    target = fields.IntField(null=True)
    state = fields.CharField(max_length=16, default=StockState.IDLE, db_index=True)  # StockState
    error = fields.TextField(default="")
    sent_at = fields.DatetimeField(null=True)  # the last call for this pair (Ozon's 30 s window)
    member = fields.ForeignKeyField("ozonbot.Member", null=True, related_name="stock_changes", on_delete=fields.SET_NULL)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "stock_item"
        unique_together = (("seller", "sku", "warehouse_id"),)


class LabelPrint(Model):
    """One posting's label in one printed batch (/labels): who printed it, when, and whether it was a reprint."""

    id = fields.IntField(primary_key=True)
    posting = fields.ForeignKeyField("ozonbot.Posting", related_name="label_prints", on_delete=fields.CASCADE)
    member = fields.ForeignKeyField("ozonbot.Member", null=True, related_name="label_prints",
                                    on_delete=fields.SET_NULL)
    task_id = fields.BigIntField(db_index=True)  # Ozon's package-label task whose file holds the label
    reprint = fields.BooleanField(default=False)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "label_print"
