"""Retention (L10): what only served its moment is deleted, so the tables and the scans over them stay small.

- WeChat callback keys (the dedupe of WeChat's retries, which come within minutes) after a day;
- the events, deliveries and card copies of a posting that is over (delivered or cancelled) and has not
  changed for 30 days. The posting row itself stays: it is what keeps an old order from being new again.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from tortoise.expressions import Q

from services.storage.models import AlertMessage, Event, InboundCallback, Notification, Posting, WecomCard
from services.storage.states import FINAL_STATUSES, Stage

log = logging.getLogger(__name__)
CALLBACKS_FOR = timedelta(days=1)
FINISHED_FOR = timedelta(days=30)
BATCH = 500


async def prune(now: datetime, *, callbacks_for: timedelta = CALLBACKS_FOR,
                finished_for: timedelta = FINISHED_FOR) -> dict[str, int]:
    """Deletes what is past its time; returns how many rows of each kind went."""
    gone = {"callbacks": await InboundCallback.filter(created_at__lt=now - callbacks_for).delete(),
            "events": 0, "notifications": 0, "cards": 0}
    finished = Posting.filter(Q(status__in=FINAL_STATUSES) | Q(stage=Stage.CANCELLED),
                              updated_at__lt=now - finished_for)
    ids = await finished.values_list("id", flat=True)
    for start in range(0, len(ids), BATCH):
        batch = ids[start:start + BATCH]
        events = await Event.filter(posting_id__in=batch).values_list("id", flat=True)
        gone["notifications"] += await Notification.filter(event_id__in=events).delete()
        gone["events"] += await Event.filter(id__in=events).delete()
        gone["cards"] += await AlertMessage.filter(posting_id__in=batch).delete()
        gone["cards"] += await WecomCard.filter(posting_id__in=batch).delete()
    if any(gone.values()):
        log.info("retention: pruned %s", gone)
    return gone
