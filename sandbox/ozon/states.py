"""The posting state machine's vocabulary (reference §2): statuses, default substatuses, push states and
the actions Ozon offers in each state per delivery flow. Pure data and functions, no state."""

from __future__ import annotations

UNFULFILLED_STATUSES: frozenset[str] = frozenset(
    {
        "awaiting_registration",
        "acceptance_in_progress",
        "awaiting_approve",
        "awaiting_packaging",
        "awaiting_deliver",
        "arbitration",
        "client_arbitration",
        "delivering",
        "driver_pickup",
        "cancelled",
        "not_accepted",
    }
)

# statuses from which a posting counts as packed ("already shipped")
SHIPPED_STATUSES: frozenset[str] = frozenset(
    {
        "awaiting_registration",
        "acceptance_in_progress",
        "awaiting_deliver",
        "sent_by_seller",
        "delivering",
        "driver_pickup",
        "arbitration",
        "client_arbitration",
        "not_accepted",
        "delivered",
    }
)

# statuses in which a label can be printed
LABEL_STATUSES: frozenset[str] = frozenset(
    {
        "awaiting_deliver",
        "acceptance_in_progress",
        "sent_by_seller",
        "delivering",
        "driver_pickup",
        "arbitration",
        "client_arbitration",
        "not_accepted",
    }
)

# default substatus for a status (what the sandbox sets when it moves a posting)
DEFAULT_SUBSTATUS: dict[str, str] = {
    "awaiting_verification": "posting_created",
    "awaiting_approve": "posting_created",
    "awaiting_packaging": "posting_created",
    "awaiting_registration": "posting_awaiting_registration",
    "acceptance_in_progress": "posting_acceptance_in_progress",
    "awaiting_deliver": "posting_transferring_to_delivery",
    "sent_by_seller": "sent_by_seller",
    "delivering": "posting_on_way_to_city",
    "driver_pickup": "posting_driver_pick_up",
    "arbitration": "posting_in_arbitration",
    "client_arbitration": "posting_in_client_arbitration",
    "not_accepted": "posting_not_in_sort_center",
    "delivered": "posting_delivered",
    "cancelled": "posting_canceled",
}

LAST_MILE_SUBSTATUS = "posting_transferred_to_courier_service"

# reference §2.4: which push "state" names belong to which status
PUSH_STATES: dict[str, tuple[str, ...]] = {
    "acceptance_in_progress": ("posting_acceptance_in_progress",),
    "awaiting_approve": ("posting_created",),
    "awaiting_packaging": ("posting_created",),
    "awaiting_registration": ("posting_awaiting_registration",),
    "awaiting_deliver": (
        "posting_transferring_to_delivery",
        "posting_in_carriage",
        "posting_not_in_carriage",
    ),
    "arbitration": ("posting_in_arbitration",),
    "client_arbitration": ("posting_in_client_arbitration",),
    "delivering": (
        "posting_on_way_to_city",
        "posting_transferred_to_courier_service",
        "posting_in_courier_service",
        "posting_on_way_to_pickup_point",
        "posting_in_pickup_point",
        "posting_conditionally_delivered",
    ),
    "driver_pickup": ("posting_driver_pick_up",),
    "delivered": ("posting_delivered", "posting_received"),
    "cancelled": ("posting_canceled",),
    "not_accepted": ("posting_not_in_sort_center",),
}

FLOWS: tuple[str, ...] = ("aggregator", "non_integrated", "3pl_tracking", "ozon")
DEFAULT_FLOWS: tuple[str, ...] = ("aggregator", "non_integrated")


def push_state(status: str, substatus: str | None) -> str:
    """The push `new_state`/`old_state` name for a status and substatus."""
    states = PUSH_STATES.get(status)
    if not states:
        return substatus or status
    if substatus in states:
        return substatus  # type: ignore[return-value]
    return states[0]


def available_actions(flow: str, status: str, substatus: str | None) -> list[str]:
    """What Ozon offers for a posting in this state (reference §2.5)."""
    seller_delivers = flow == "non_integrated"
    if status == "awaiting_packaging":
        actions = ["ship"]
        if substatus == "ship_failed":
            actions.append("ship_async_retry")
        if seller_delivers:
            actions.append("set_cutoff")
        actions += ["cancel", "product_cancel"]
        if seller_delivers:
            actions.append("can_create_chat")
        return actions
    if status in ("awaiting_approve", "awaiting_verification"):
        return ["cancel"]
    if status == "awaiting_registration":
        return ["ship_async_in_process", "cancel"]
    if status == "awaiting_deliver":
        if seller_delivers:
            return [
                "set_track_number",
                "non_int_delivering",
                "label_download",
                "label_download_big",
                "cancel",
                "can_create_chat",
            ]
        return ["label_download", "label_download_big", "has_barcode_for_printing", "cancel"]
    if status == "delivering":
        if seller_delivers:
            if substatus == LAST_MILE_SUBSTATUS:
                return ["set_track_number", "non_int_delivered", "can_create_chat"]
            return ["set_track_number", "non_int_last_mile", "non_int_delivered", "can_create_chat"]
        return []
    if status in ("arbitration", "client_arbitration"):
        return ["awaiting_delivery"]
    return []
