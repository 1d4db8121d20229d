"""The one vocabulary of stored states: our workflow (stages, roles, kinds, delivery states) and Ozon's statuses.

Each enum holds exactly the strings the migrations have always stored, so no data moves: a `StrEnum` member
is that string (`Stage.PACKED == "packed"`, formats and serialises as it). The named sets are module-level
frozensets because an enum member can only be one value. Ozon's statuses stay strings (Ozon adds new ones):
the sets below are the ones our workflow reads."""

from __future__ import annotations

from enum import StrEnum


class Stage(StrEnum):
    """Our side of a posting's workflow (`Posting.stage`), beside Ozon's status."""

    NEW = "new"  # waiting for a courier to be chosen
    COURIER = "courier"  # courier chosen, being packed by hand
    PACKING = "packing"  # Packed pressed, Ozon's ship call under way
    PACKED = "packed"  # Ozon confirmed: waiting for the hand-over and the waybill number
    HANDED_OVER = "handed_over"  # the waybill number is in
    CANCELLED = "cancelled"


CHOOSING_STAGES = frozenset({Stage.NEW, Stage.COURIER})  # nobody pressed Packed yet: the courier can change
UNPACKED_STAGES = frozenset({Stage.NEW, Stage.COURIER, Stage.PACKING})
AFTER_PACKING = frozenset({Stage.PACKED, Stage.HANDED_OVER})  # a waybill, a label and tracking apply
OPEN_STAGES = frozenset({Stage.NEW, Stage.COURIER, Stage.PACKING, Stage.PACKED})  # still work on the desk


class Role(StrEnum):
    """What a member is on a seller's desk (`Member.role`, `Invite.role`)."""

    OWNER = "owner"
    PACKER = "packer"
    GROUP = "group"  # a group chat that receives the desk's alerts, not a person
    REMOVED = "removed"  # taken off the desk by the owner: the row stays, every right it had is gone


PEOPLE = frozenset({Role.OWNER, Role.PACKER})  # members who may press buttons and give commands


class KeyState(StrEnum):
    """Whether a seller's Ozon key still works (`Seller.key_state`)."""

    OK = "ok"
    REVOKED = "revoked"  # Ozon refused it: polling stops until the owner connects a new one


class LabelState(StrEnum):
    """The Ozon label PDF of a packed posting (`Posting.label_state`)."""

    NONE = "none"
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"


class EventKind(StrEnum):
    """A domain event of a posting (`Event.kind`), emitted once per posting, kind and key."""

    NEW = "new"
    STATUS = "status"  # key: the new Ozon status
    CANCELLED = "cancelled"
    ANNOUNCE = "announce"  # key: delivering or delivered
    DEADLINE = "deadline"  # key: the new shipment date
    REMIND = "remind"  # key: the lead before the deadline
    CANCEL_ASKED = "cancel_asked"  # key: Ozon's cancellation_id; the buyer asked to cancel
    CANCEL_REMIND = "cancel_remind"  # key: the cancellation_id; nobody answered and auto-approval is near
    CANCEL_DECIDED = "cancel_decided"  # key: the cancellation_id; approved, rejected or auto-approved
    TRACE = "trace"  # a first-mile alert; key: what it is about and the waybill (services.firstmile)


class IntentKind(StrEnum):
    """An Ozon mutation recorded before it is sent (`Intent.kind`)."""

    SHIP = "ship"
    TRACKING = "tracking"
    DELIVERING = "delivering"
    LABEL = "label"
    CANCEL_DECISION = "cancel_decision"  # key: the cancellation_id; payload: approve or reject, comment


class CancelState(StrEnum):
    """A buyer's cancellation request (`CancelRequest.state`)."""

    OPEN = "open"  # ON_APPROVAL at Ozon: the desk decides before auto_approve_date
    APPROVED = "approved"  # the seller agreed: Ozon cancels the posting
    REJECTED = "rejected"  # the seller refused with a reason: the posting stays
    AUTO_APPROVED = "auto_approved"  # nobody answered in time (or it was decided in the Ozon cabinet)


class StockState(StrEnum):
    """A stock change asked from the chat for one product in one warehouse (`StockItem.state`)."""

    IDLE = "idle"  # nothing owed: `free` is what Ozon last confirmed or showed
    QUEUED = "queued"  # `target` waits for Ozon's 30 s window of the pair (a later change replaces it)
    SENDING = "sending"  # in a /v2/products/stocks call
    REFUSED = "refused"  # Ozon refused the last change: `error` says why


class IntentState(StrEnum):
    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"


class NotificationState(StrEnum):
    """One delivery to one member (`Notification.state`; `Notice.state` uses all but SKIPPED)."""

    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    SKIPPED = "skipped"  # the card was already in that chat, or the alert no longer applies
    REFUSED = "refused"  # the platform's permanent no (blocked by the user, chat gone): never tried again
    EXPIRED = "expired"  # undeliverable for as long as the alert mattered (a day of outage)


class NoticeKind(StrEnum):
    """A desk message not about one posting (`Notice.kind`)."""

    DIGEST = "digest"
    KEY_EXPIRY = "key_expiry"
    ALERTS_REFUSED = "alerts_refused"  # key: the member whose chat refuses the desk's alerts


class PendingKind(StrEnum):
    """What the bot waits for from a member (`PendingInput.kind`)."""

    WAYBILL = "waybill"
    CONFIRM = "confirm"  # a number that does not look like the courier's, waiting for "use it anyway"
    CANCEL_REASON = "cancel_reason"  # the owner's reason for rejecting a buyer's cancellation request


# Ozon's posting statuses (Seller API), as our workflow groups them
AWAITING_PACKAGING = "awaiting_packaging"
AWAITING_REGISTRATION = "awaiting_registration"
FINAL_STATUSES = frozenset({"delivered", "cancelled", "cancelled_from_split_pending"})
CANCELLED_STATUSES = frozenset({"cancelled", "cancelled_from_split_pending"})
ANNOUNCED_STATUSES = frozenset({"delivering", "delivered"})  # and cancellation, its own event
UNPACKED_STATUSES = frozenset({AWAITING_PACKAGING, "awaiting_approve", "awaiting_verification"})


class WaybillRole(StrEnum):
    """Which leg a watched domestic waybill is (`Waybill.role`)."""

    OUTBOUND = "outbound"  # the desk's parcel, handed to the courier on its first mile
    INBOUND = "inbound"  # a supplier's parcel coming to the desk (无货源)


class WaybillState(StrEnum):
    """A watched waybill's Kuaidi100 subscription (`Waybill.state`)."""

    PENDING = "pending"  # not yet taken by Kuaidi100: tried again at next_attempt_at
    SUBSCRIBED = "subscribed"  # pushes arrive
    REFUSED = "refused"  # Kuaidi100 will never track it (courier unsupported, number rejected); told once
    SIGNED = "signed"  # signed for: Kuaidi100 pushes no more
    ABORTED = "aborted"  # Kuaidi100 gave up twice (no record in 3 days, no change in 60)


class InboundState(StrEnum):
    """Where the goods of a posting stand when a supplier sends them (`Posting.inbound`)."""

    NONE = ""  # no supplier parcel recorded: the goods are in hand
    ON_THE_WAY = "on_the_way"
    ARRIVED = "arrived"  # every supplier parcel of the posting is signed for
