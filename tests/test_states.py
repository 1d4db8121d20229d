"""The named states are the strings the database has always held: the enums match the migrations, the models
need no migration, a row written with a member reads back as the plain string, and the product code writes
and compares its states through the enums."""

from __future__ import annotations

import ast
import re
from enum import StrEnum
from pathlib import Path

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
    CancelState,
    EventKind,
    InboundState,
    IntentKind,
    IntentState,
    KeyState,
    LabelState,
    NoticeKind,
    NotificationState,
    PendingKind,
    Role,
    Stage,
    StockState,
    WaybillRole,
    WaybillState,
)

# every enum's values: the strings written to its columns since migration 0001 (Role.REMOVED: by the owner's
# "remove member" of the conversation core, which keeps the row)
VOCABULARY = {
    KeyState: {"ok", "revoked"},
    Role: {"owner", "packer", "group", "removed"},
    Stage: {"new", "courier", "packing", "packed", "handed_over", "cancelled"},
    LabelState: {"none", "pending", "sent", "failed"},
    EventKind: {"new", "status", "cancelled", "announce", "deadline", "remind", "trace", "cancel_asked",
                "cancel_remind", "cancel_decided"},
    NotificationState: {"sending", "sent", "failed", "skipped", "refused", "expired"},  # the last two: 0005 (H3)
    IntentKind: {"ship", "tracking", "delivering", "label", "cancel_decision"},
    IntentState: {"pending", "done", "failed"},
    PendingKind: {"waybill", "confirm", "cancel_reason"},
    CancelState: {"open", "approved", "rejected", "auto_approved"},
    StockState: {"idle", "queued", "sending", "refused"},
    NoticeKind: {"digest", "key_expiry", "alerts_refused"},
    WaybillRole: {"outbound", "inbound"},
    InboundState: {"", "on_the_way", "arrived"},
    WaybillState: {"pending", "subscribed", "refused", "signed", "aborted"},
}
COLUMNS = [  # (model, column, the enum it holds)
    ("Seller", "key_state", KeyState),
    ("Member", "role", Role),
    ("Invite", "role", Role),
    ("Posting", "stage", Stage),
    ("Posting", "label_state", LabelState),
    ("Event", "kind", EventKind),
    ("Notification", "state", NotificationState),
    ("Intent", "kind", IntentKind),
    ("Intent", "state", IntentState),
    ("PendingInput", "kind", PendingKind),
    ("Notice", "kind", NoticeKind),
    ("CancelRequest", "state", CancelState),
    ("StockItem", "state", StockState),
    ("Notice", "state", NotificationState),
    ("Waybill", "role", WaybillRole),
    ("Posting", "inbound", InboundState),
    ("Waybill", "state", WaybillState),
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
    for enum, stored in VOCABULARY.items():
        assert {member.value for member in enum} == stored, enum
    assert {enum for _, _, enum in COLUMNS} == set(VOCABULARY)
    for model, column, enum in COLUMNS:
        field = migrated[(db.APP, model)].fields[column]
        assert type(field) is fields.CharField
        assert max(map(len, VOCABULARY[enum])) <= field.max_length, (model, column)
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


# --- the house keeps to the names: no bare state strings in the product code -------------------------------

PRODUCT = ("services", "handlers", "bot")
SKIPPED = ("services/storage/migrations", "services/ozon")  # the migrations' record; Ozon's own words
STATE_KEYWORDS = re.compile(r"^(\w+__)*(stage|role|kind|state|label_state|key_state|from_state)(__\w+)?$")
STATE_ATTRIBUTES = {"stage", "role", "kind", "state", "label_state", "key_state"}
STATE_NAMES = {"stage", "role"}  # locals and parameters of these names (a local `kind` is often Ozon's)


def _literal_strings(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return [s for element in node.elts for s in _literal_strings(element)]
    if isinstance(node, ast.IfExp):
        return _literal_strings(node.body) + _literal_strings(node.orelse)
    return []


def _bare_states(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg and STATE_KEYWORDS.match(node.arg):
            found += [(node.value.lineno, f"{node.arg}={s!r}") for s in _literal_strings(node.value)]
        elif isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            if any(isinstance(side, ast.Attribute) and side.attr in STATE_ATTRIBUTES
                   or isinstance(side, ast.Name) and side.id in STATE_NAMES for side in sides):
                found += [(node.lineno, repr(s)) for side in sides for s in _literal_strings(side)]
        elif isinstance(node, ast.arguments):
            named = [*node.posonlyargs, *node.args][-len(node.defaults):] if node.defaults else []
            pairs = [*zip(named, node.defaults, strict=True), *zip(node.kwonlyargs, node.kw_defaults, strict=True)]
            found += [(arg.lineno, f"{arg.arg}={s!r}") for arg, default in pairs
                      if default is not None and STATE_KEYWORDS.match(arg.arg) for s in _literal_strings(default)]
        elif isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if isinstance(key, ast.Constant) and isinstance(key.value, str) and STATE_KEYWORDS.match(key.value):
                    found += [(value.lineno, f"{key.value!r}: {s!r}") for s in _literal_strings(value)]
    return found


def test_product_code_names_its_states():
    """A stage, role, kind or state is written and compared through services.storage.states: a new value
    becomes a member there (with the test above), not a string in one module."""
    root = Path(__file__).resolve().parents[1]
    bare = []
    for package in PRODUCT:
        for path in sorted((root / package).rglob("*.py")):
            relative = path.relative_to(root).as_posix()
            if relative.startswith(SKIPPED) or relative == "services/storage/states.py":
                continue
            bare += [f"{relative}:{line}: {what}" for line, what in _bare_states(ast.parse(path.read_text()))]
    assert bare == [], "use the enums and sets of services/storage/states.py:\n" + "\n".join(bare)
