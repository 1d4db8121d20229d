"""Simulated people for the fault suite: desk members who work their orders to the end whatever the bot's
state (a lost press is pressed again, a stale card is pressed to refresh it), and intruders who press
buttons that are not theirs. The database is read only to decide what a person would do next."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass, field

from sandbox.telegram import FakeBotAPI
from services.storage.models import Intent, Member, PendingInput, Posting

REFRESHING_VERBS = ("c", "p", "w")  # a press of these on a stale card makes the bot redraw it
RESENT_MARKER = "↻"
LATE_MARKER = "⏳"


@dataclass
class Person:
    user_id: int
    name: str
    member_id: int | None = None


@dataclass
class Work:
    number: str
    waybill: str


@dataclass
class Tally:
    presses: int = 0
    typed: int = 0
    redone: int = 0
    intruder_presses: int = 0
    intruder_refusals: int = 0
    intruder_queries: list[str] = field(default_factory=list)


class DeskWorker:
    def __init__(self, tg: FakeBotAPI, person: Person, tally: Tally, *, step_timeout: float = 6.0):
        self.tg = tg
        self.person = person
        self.tally = tally
        self.step_timeout = step_timeout

    async def work(self, jobs: list[Work], deadline: float) -> None:
        for job in jobs:
            await self.finish(job, deadline)

    async def finish(self, job: Work, deadline: float) -> None:
        while time.monotonic() < deadline:
            row = await Posting.get_or_none(posting_number=job.number)
            if row is None or row.stage == "packing" or await self._busy(row):
                await asyncio.sleep(0.3)  # not alerted yet, or the bot is working on it
                continue
            if row.stage in ("handed_over", "cancelled"):
                return
            before = await self._state(row)
            if not await self._act(row, job):
                await asyncio.sleep(0.3)
                continue
            if not await self._progressed(row, before):
                self.tally.redone += 1  # lost in a crash or a fault: do it again, as a person would
        raise AssertionError(f"{self.person.name} could not finish {job.number}")

    async def _busy(self, row: Posting) -> bool:
        return await Intent.filter(posting_id=row.id, state="pending").exists()

    async def _state(self, row: Posting) -> tuple:
        fresh = await Posting.get(id=row.id)
        pending = await PendingInput.get_or_none(member_id=self.person.member_id)
        return fresh.stage, pending.posting_id if pending else None, pending.kind if pending else None

    async def _progressed(self, row: Posting, before: tuple) -> bool:
        end = time.monotonic() + self.step_timeout
        while time.monotonic() < end:
            await asyncio.sleep(0.2)
            if await self._state(row) != before or await self._busy(row):
                return True
        return False

    async def _act(self, row: Posting, job: Work) -> bool:
        pending = await PendingInput.get_or_none(member_id=self.person.member_id)
        if row.stage == "packed" and pending and pending.posting_id == row.id and pending.kind == "waybill":
            self.tg.push_message(self.person.user_id, job.waybill, language_code="en")
            self.tally.typed += 1
            return True
        wanted = {"new": "c", "courier": "p", "packed": "w"}[row.stage]
        found = self._button(row.id, wanted) or next(
            (b for verb in REFRESHING_VERBS if (b := self._button(row.id, verb))), None)
        if found is None:
            return False
        message_id, data = found
        self.tg.push_callback(self.person.user_id, message_id, data)
        self.tally.presses += 1
        return True

    def _button(self, posting_id: int, verb: str) -> tuple[int, str] | None:
        """The newest button of `verb` for the posting in this person's chat (SF Express for couriers)."""
        for message in reversed(self.tg.messages(self.person.user_id)):
            for _, data in message.buttons:
                parts = (data or "").split(".")
                if len(parts) == 4 and parts[0] == verb and parts[1] == str(posting_id):
                    if verb != "c" or parts[2] == "sf":
                        return message.message_id, data
        return None


class Intruder:
    """Presses real button data it should not have: as a stranger, as another desk's owner, and forged."""

    def __init__(self, tg: FakeBotAPI, owner: Person, outsiders: list[Person], tally: Tally, seed: int = 3):
        self.tg = tg
        self.owner = owner
        self.outsiders = outsiders
        self.tally = tally
        self._rng = random.Random(seed)

    async def run(self, stop: asyncio.Event, every: float = 0.7) -> None:
        while not stop.is_set():
            await asyncio.sleep(every)
            stolen = [data for m in self.tg.messages(self.owner.user_id) for _, data in m.buttons if data]
            if not stolen:
                continue
            data = self._rng.choice(stolen)
            for outsider in self.outsiders:
                own = self.tg.last_message(outsider.user_id)
                if own is not None:
                    self._press(outsider.user_id, own.message_id, data)
            forged = data[:-2] + ("zz" if not data.endswith("zz") else "yy")
            card = self.tg.messages(self.owner.user_id)[-1]
            self._press(self.owner.user_id, card.message_id, forged)

    def _press(self, user_id: int, message_id: int, data: str) -> None:
        self.tally.intruder_queries.append(self.tg.push_callback(user_id, message_id, data))
        self.tally.intruder_presses += 1

    def refusals(self) -> tuple[int, list[dict]]:
        """(refused, anything else) among the intruders' presses the bot answered before a crash."""
        answers = [self.tg.callback_answer(q) for q in self.tally.intruder_queries]
        answered = [a for a in answers if a]
        accepted = [a for a in answered if a.get("show_alert") not in (True, "true") or
                    "not for you" not in str(a.get("text"))]
        return len(answered) - len(accepted), accepted


def alerts_per_chat(tg: FakeBotAPI, numbers: list[str]) -> tuple[Counter, Counter]:
    """(plain alerts, marked re-sends) of each posting's New-order card, per (chat, posting)."""
    plain, marked = Counter(), Counter()
    for call in tg.calls_of("sendMessage", ok=True):
        text = str(call.params.get("text") or "")
        if text.startswith(LATE_MARKER):  # delivered late after an outage: the card follows that line
            text = text.partition("\n")[2]
        resent = text.startswith(RESENT_MARKER)
        lines = text.split("\n")
        header = lines[1] if resent and len(lines) > 1 else lines[0]
        for number in numbers:
            # a card delivered late shows the posting as it is then: packed or cancelled meanwhile
            if header in (f"🆕 New order {number}", f"📦 Order {number}", f"❌ CANCELLED, stop packing: {number}"):
                target = marked if resent else plain
                target[(int(call.params["chat_id"]), number)] += 1
    return plain, marked


async def member_ids(people: list[Person]) -> None:
    for person in people:
        member = await Member.filter(channel="telegram", external_id=str(person.user_id)).first()
        person.member_id = member.id if member else None
