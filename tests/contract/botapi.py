"""Telegram's Bot API method and type list, machine-readable, and a check of traffic against it.

tests/fixtures/telegram-bot-api-subset.json holds the methods the fake Bot API serves and every type
their parameters and return values reach, trimmed from api.json of PaulSonOfLars/telegram-bot-api-spec
(a daily scrape of core.telegram.org/bots/api; repository, commit and Bot API version in its ``x-source``). Rebuild it with
``python -m tests.contract.botapi /path/to/api.json`` (methods taken from the fake's own list).

A request is judged by its method's fields: a missing required field, or a value of none of the field's
types, is a violation; a parameter the method does not have is an extra (reported, not failed).
A successful answer of the fake is judged the same way by the method's return type (``Message``,
``True``, ``Array of Update``...), so the stand-in agrees with Telegram on both sides of the wire.
Types follow the page's names: ``Integer``, ``Float``, ``String``, ``Boolean``, ``True``, ``InputFile``,
``Array of X``, object types by their fields, and union types (``subtypes``) by their best member.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

SUBSET_PATH = Path(__file__).resolve().parents[1] / "fixtures" / "telegram-bot-api-subset.json"
FILE_FIELDS = {"InputFile"}


@cache
def spec() -> dict[str, Any]:
    return json.loads(SUBSET_PATH.read_text(encoding="utf-8"))


def _method(name: str) -> dict[str, Any] | None:
    wanted = name.lower()
    return next((m for key, m in spec()["methods"].items() if key.lower() == wanted), None)


def _matches(value: Any, kind: str, where: str, out: list[str], extras: dict[str, set[str]]) -> bool:
    """Does ``value`` fit ``kind``? Problems inside an object go to ``out``/``extras`` (and count)."""
    if kind.startswith("Array of "):
        inner = kind[len("Array of "):]
        if not isinstance(value, list):
            return False
        for i, item in enumerate(value):  # a list is the kind; its items are judged one by one
            _fits(item, [inner], f"{where}[{i}]", out, extras)
        return True
    if kind == "Integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "Float":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "String":
        return isinstance(value, str)
    if kind == "Boolean":
        return isinstance(value, bool)
    if kind == "True":
        return value is True
    if kind in FILE_FIELDS:
        return isinstance(value, str)  # a file_id or URL; uploaded bytes arrive as a file part
    definition = spec()["types"].get(kind)
    if definition is None or not isinstance(value, dict):
        return False
    if definition.get("subtypes"):
        return _fits(value, definition["subtypes"], where, out, extras)
    _fields(value, definition.get("fields", []), where, out, extras)
    return True


def _fits(value: Any, kinds: list[str], where: str, out: list[str], extras: dict[str, set[str]]) -> bool:
    """``value`` is one of ``kinds``: the kind it fits best (fewest problems inside) is the one judged."""
    trials = []
    for kind in kinds:
        trial_out: list[str] = []
        trial_extras: dict[str, set[str]] = {}
        ok = _matches(value, kind, where, trial_out, trial_extras)
        trials.append((not ok, len(trial_out), sum(map(len, trial_extras.values())), trial_out, trial_extras))
    failed, _, _, best_out, best_extras = min(trials, key=lambda t: t[:3])
    if failed:
        shown = json.dumps(value, ensure_ascii=False)
        out.append(f"{where}: not {' or '.join(kinds)} <- {shown if len(shown) <= 60 else shown[:57] + '...'}")
        return False
    out.extend(best_out)
    for k, v in best_extras.items():
        extras.setdefault(k, set()).update(v)
    return True


def _fields(value: dict[str, Any], fields: list[dict[str, Any]], where: str, out: list[str],
            extras: dict[str, set[str]], files: dict[str, Any] | None = None) -> None:
    known = {f["name"]: f for f in fields}
    for name, spec_field in known.items():
        if name not in value:
            if spec_field.get("required") and not (files and name in files):
                out.append(f"{where}.{name}: required, missing")
            continue
        _fits(value[name], spec_field["types"], f"{where}.{name}", out, extras)
    unknown = set(value) - set(known)
    if unknown:
        extras.setdefault(re.sub(r"\[\d+\]", "[]", where), set()).update(unknown)


@dataclass
class BotApiFindings:
    checked: int = 0
    violations: list[str] = field(default_factory=list)
    extras: dict[str, set[str]] = field(default_factory=dict)
    unknown_methods: set[str] = field(default_factory=set)
    checked_answers: int = 0
    answer_violations: list[str] = field(default_factory=list)
    answer_extras: dict[str, set[str]] = field(default_factory=dict)

    def request(self, method: str, params: dict[str, Any], files: dict[str, Any] | None = None) -> None:
        self.checked += 1
        definition = _method(method)
        if definition is None:
            self.unknown_methods.add(method)
            return
        _fields(params, definition.get("fields", []), definition["name"], self.violations, self.extras, files)

    def response(self, method: str, result: Any) -> None:
        """A successful answer against the method's return type (the fake's side of the wire)."""
        self.checked_answers += 1
        definition = _method(method)
        if definition is not None and definition.get("returns"):
            _fits(result, definition["returns"], f"{definition['name']} -> {'|'.join(definition['returns'])}",
                  self.answer_violations, self.answer_extras)

    def extra_fields(self) -> list[str]:
        return sorted(f"{where}: {', '.join(sorted(names))}" for where, names in self.extras.items())

    def answer_extra_fields(self) -> list[str]:
        return sorted(f"{where}: {', '.join(sorted(names))}" for where, names in self.answer_extras.items())


def trim(full: dict[str, Any], methods: list[str], source: dict[str, Any]) -> dict[str, Any]:
    """The methods named and every type their fields reach, descriptions dropped."""
    types: dict[str, Any] = {}
    todo = []

    def note(kinds: list[str]) -> None:
        for kind in kinds:
            base = kind.replace("Array of ", "")
            if base in full["types"] and base not in types:
                todo.append(base)

    out_methods = {}
    for name in methods:
        m = full["methods"][name]
        out_methods[name] = {"name": name, "returns": m.get("returns"),
                             "fields": [{k: f[k] for k in ("name", "types", "required")} for f in m.get("fields", [])]}
        for f in m.get("fields", []):
            note(f["types"])
        note(m.get("returns") or [])
    while todo:
        name = todo.pop()
        if name in types:
            continue
        t = full["types"][name]
        types[name] = {"name": name, **({"subtypes": t["subtypes"]} if t.get("subtypes") else {}),
                       "fields": [{k: f[k] for k in ("name", "types", "required")} for f in t.get("fields", [])]}
        note(t.get("subtypes", []))
        for f in t.get("fields", []):
            note(f["types"])
    return {"x-source": source, "methods": out_methods, "types": dict(sorted(types.items()))}


def main(argv: list[str]) -> int:
    from sandbox.telegram import FakeBotAPI

    full = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    served = sorted(FakeBotAPI()._methods)
    names = sorted(name for name in full["methods"] if name.lower() in served)
    source = {"repo": "PaulSonOfLars/telegram-bot-api-spec", "path": "api.json", "commit": argv[1] if len(argv) > 1 else "",
              "version": full.get("version"), "release_date": full.get("release_date")}
    SUBSET_PATH.write_text(json.dumps(trim(full, names, source), ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))


SUITE = BotApiFindings()  # every request our bot sent to a `fake_tg` in this run (conftest)


def judge_calls(calls: list[Any]) -> list[str]:
    """Check a fake's recorded calls into SUITE; the violations they added."""
    before, answers_before = len(SUITE.violations), len(SUITE.answer_violations)
    for call in calls:
        SUITE.request(call.method, call.params, call.files)
        if call.ok:
            SUITE.response(call.method, call.result)
    return SUITE.violations[before:] + SUITE.answer_violations[answers_before:]
