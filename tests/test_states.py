"""The named states are the strings the database has always held: the enums match the migrations, the models
need no migration, and a row written with a member reads back as the plain string."""

from __future__ import annotations

from enum import StrEnum

import pytest
from tortoise import Tortoise, connections, fields
from tortoise.migrations.autodetector import MigrationAutodetector
from tortoise.migrations.schema_generator.operation_generator import OperationGenerator

from services.storage import db
from services.storage.models import Event, Intent, Member, Notice, Notification, PendingInput, Posting, Seller
from services.storage.states import (
    AFTER_PACKING,
    CHOOSING_STAGES,
    OPEN_STAGES,
    PEOPLE,
    UNPACKED_STAGES,
    EventKind,
    IntentKind,
    IntentState,
    KeyState,
    LabelState,
    NoticeKind,
    NotificationState,
    PendingKind,
    Role,
    Stage,
)

# (model, column, enum, the values written to that column since migration 0001)
COLUMNS = [
    ("Seller", "key_state", KeyState, {"ok", "revoked"}),
    ("Member", "role", Role, {"owner", "packer", "group"}),
    ("Invite", "role", Role, {"owner", "packer", "group"}),
    ("Posting", "stage", Stage, {"new", "courier", "packing", "packed", "handed_over", "cancelled"}),
    ("Posting", "label_state", LabelState, {"none", "pending", "sent", "failed"}),
    ("Event", "kind", EventKind, {"new", "status", "cancelled", "announce", "deadline", "remind"}),
    ("Notification", "state", NotificationState, {"sending", "sent", "failed", "skipped"}),
    ("Intent", "kind", IntentKind, {"ship", "tracking", "delivering", "label"}),
    ("Intent", "state", IntentState, {"pending", "done", "failed"}),
    ("PendingInput", "kind", PendingKind, {"waybill", "confirm"}),
    ("Notice", "kind", NoticeKind, {"digest", "key_expiry"}),
    ("Notice", "state", NotificationState, {"sending", "sent", "failed", "skipped"}),
]


async def _states() -> tuple[dict, dict, list]:
    """The schema the migrations build, the one the models declare, and the operations between them."""
    config = db.tortoise_config("sqlite://:memory:")
    await Tortoise.init(config=config)
    try:
        detector = MigrationAutodetector(Tortoise.apps, config["apps"])
        await detector.loader.build_graph()
        migrated = await detector._project_state()
        declared = detector._current_state()
        return migrated.models, declared.models, OperationGenerator(migrated, declared).generate(app_labels=[db.APP])
    finally:
        await Tortoise.close_connections()


async def test_models_need_no_migration_and_enums_fit_their_columns():
    migrated, declared, operations = await _states()
    assert operations == []  # e.g. CharEnumField would be an AlterField (field type and column comment)
    for model, column, enum, stored in COLUMNS:
        assert {member.value for member in enum} == stored, (model, column)
        field = migrated[(db.APP, model)].fields[column]
        assert type(field) is fields.CharField
        assert max(map(len, stored)) <= field.max_length
        default = declared[(db.APP, model)].fields[column].default
        assert default == field.default  # the migration's literal default is the model's enum member
        assert default is None or default in enum


def test_named_sets():
    assert CHOOSING_STAGES == {"new", "courier"}
    assert UNPACKED_STAGES == CHOOSING_STAGES | {"packing"}
    assert AFTER_PACKING == {"packed", "handed_over"}
    assert OPEN_STAGES == set(Stage) - {Stage.HANDED_OVER, Stage.CANCELLED}
    assert PEOPLE == {"owner", "packer"} and Role.GROUP not in PEOPLE


@pytest.mark.parametrize("value", [Stage.HANDED_OVER, "handed_over"])
def test_a_member_is_its_string(value: StrEnum | str):
    assert value == Stage.HANDED_OVER and f"{value}" == "handed_over" and value in AFTER_PACKING


async def test_members_are_stored_and_filtered_as_their_strings(db_url: str):
    await db.connect(db_url)
    try:
        seller = await Seller.create(client_id="1", api_key_enc="x", push_token="t")
        member = await Member.create(seller=seller, channel="console", external_id="1", role=Role.OWNER)
        posting = await Posting.create(seller=seller, posting_number="1-1", stage=Stage.PACKED,
                                       label_state=LabelState.PENDING)
        event = await Event.create(posting=posting, kind=EventKind.REMIND, key="2h")
        await Notification.create(event=event, member=member)
        await Intent.create(posting=posting, kind=IntentKind.LABEL)
        await PendingInput.create(member=member, posting=posting)
        await Notice.create(member=member, kind=NoticeKind.DIGEST, key="2026-12-04")
        conn = connections.get("default")
        raw = {}
        for table, columns in (("seller", "key_state"), ("member", "role"), ("posting", "stage, label_state"),
                               ("event", "kind"), ("notification", "state"), ("intent", "kind, state"),
                               ("pending_input", "kind"), ("notice", "kind, state")):
            _, rows = await conn.execute_query(f"SELECT {columns} FROM {table}")
            raw[table] = tuple(rows[0])
        assert raw == {"seller": ("ok",), "member": ("owner",), "posting": ("packed", "pending"),
                       "event": ("remind",), "notification": ("sending",), "intent": ("label", "pending"),
                       "pending_input": ("waybill",), "notice": ("digest", "sending")}
        assert all(type(value) is str for row in raw.values() for value in row)
        assert await Posting.filter(stage__in=AFTER_PACKING, label_state=LabelState.PENDING).count() == 1
        assert await Posting.filter(stage__in=CHOOSING_STAGES).count() == 0
        await Posting.filter(id=posting.id, stage=Stage.PACKED).update(stage=Stage.HANDED_OVER)
        assert (await Posting.get(id=posting.id)).stage == "handed_over"
        assert await Member.filter(role__in=PEOPLE).count() == 1
    finally:
        await db.close()
