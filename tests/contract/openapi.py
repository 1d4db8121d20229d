"""Ozon's published OpenAPI 3.0 schemas (tests/fixtures/ozon-openapi-subset.json, a copy of the subset
transcribed from public mirrors of docs.ozon.ru/api/seller/swagger.json; sources in its ``x-sources``)
turned into JSON Schema validators, one per method and direction.

OpenAPI 3.0 schema objects are a dialect of JSON Schema draft 4/5; the differences that matter here:
- ``nullable: true`` admits null (JSON Schema has no such keyword): it becomes ``type: [T, "null"]``;
- objects are open, and the spec never closes one, so an unknown field is legal. We close every object
  (``additionalProperties: false``) only to *see* extra fields: an ``additionalProperties`` error is an
  extra (reported), every other error (type, enum, required, bounds, pattern) is a violation (failed).
- Ozon answers ``null`` for a value that is not set (reference §1: "a date that is not set comes back as
  null"; objects such as ``barcodes`` or ``customer`` likewise), while the published schemas declare no
  ``nullable`` at all. Not set is legal exactly where a property is not required, so an optional property
  admits null and a required one does not.
- ``addressee.phone`` carries ``pattern: " +7(XXX)XXX-XX-XX"``, a display mask, not a regular expression
  (no real phone matches it): patterns with ``XXX`` in them are dropped.
- one property in Ozon's spec has the type ``"array of strings"`` (a typo of theirs): read as an array
  of strings, the only sensible meaning.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft7Validator

SPEC_PATH = Path(__file__).resolve().parents[1] / "fixtures" / "ozon-openapi-subset.json"
_INDEX = re.compile(r"\[\d+\]")
_DROP = {"nullable", "example", "description", "title", "deprecated", "x-source", "x-note", "default"}


@cache
def spec() -> dict[str, Any]:
    return json.loads(SPEC_PATH.read_text(encoding="utf-8"))


def to_json_schema(schema: Any) -> Any:
    """One OpenAPI 3.0 schema object as JSON Schema (draft 7), objects closed to expose extras."""
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _DROP:
            continue
        if key == "properties":
            required = set(schema.get("required") or ())
            out[key] = {name: to_json_schema(sub) if name in required else _nullable(to_json_schema(sub))
                        for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "not"):
            out[key] = to_json_schema(value)
        elif key == "pattern" and "XXX" in value:
            continue
        elif key in ("allOf", "anyOf", "oneOf"):
            out[key] = [to_json_schema(sub) for sub in value]
        else:
            out[key] = value
    if out.get("type") == "array of strings":
        out["type"], out["items"] = "array", {"type": "string"}
    if (out.get("type") == "object" or "properties" in out) and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return _nullable(out) if schema.get("nullable") else out


def _nullable(out: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in out:  # a branch of its own, so errors inside the referenced schema stay readable
        return {"anyOf": [{"$ref": out.pop("$ref")}, {"type": "null"}], "x-null-ok": True, **out}
    out = dict(out)
    if isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    if "enum" in out and None not in out["enum"]:
        out["enum"] = [*out["enum"], None]
    return out


@cache
def _components() -> dict[str, Any]:
    return {"schemas": {name: to_json_schema(s) for name, s in spec()["components"]["schemas"].items()}}


def _operation(path: str) -> dict[str, Any]:
    try:
        return spec()["paths"][path]["post"]
    except KeyError:
        raise KeyError(f"{path} is not in the spec subset") from None


def _json_schema(container: dict[str, Any]) -> dict[str, Any] | None:
    ref = (container or {}).get("$ref", "")
    if ref.startswith("#/components/requestBodies/"):
        container = spec()["components"]["requestBodies"][ref.rsplit("/", 1)[1]]
    content = (container or {}).get("content", {}).get("application/json")
    return content.get("schema") if content else None


@cache
def request_validator(path: str) -> Draft7Validator | None:
    """None when the spec defines no request body (``/v1/roles``)."""
    schema = _json_schema(_operation(path).get("requestBody") or {})
    return _validator(schema) if schema else None


@cache
def response_validator(path: str, status: int) -> Draft7Validator | None:
    """None when the answer is not JSON (``/v2/posting/fbs/package-label`` answers a PDF)."""
    responses = _operation(path)["responses"]
    schema = _json_schema(responses.get(str(status)) or responses["default"])
    return _validator(schema) if schema else None


def _validator(schema: dict[str, Any]) -> Draft7Validator:
    root = {**to_json_schema(schema), "components": _components()}
    Draft7Validator.check_schema(root)
    return Draft7Validator(root)


def response_schema(path: str, status: int = 200) -> dict[str, Any]:
    """The raw (OpenAPI) response schema of a method, ``$ref`` resolved one level ({} if not JSON)."""
    schema = _json_schema(_operation(path)["responses"][str(status)])
    return resolve(schema) if schema else {}


def resolve(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = spec()["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def _leaves(errors: Any) -> Any:
    """Errors with an optional ``$ref`` property's null branch taken out: what broke the schema itself."""
    for error in errors:
        if error.validator == "anyOf" and error.schema.get("x-null-ok"):
            yield from _leaves(sub for sub in error.context if sub.relative_schema_path[0] == 0)
        else:
            yield error


@dataclass
class Findings:
    """What the spec says about the traffic seen: violations fail, extras are only reported."""

    checked: int = 0
    violations: list[str] = field(default_factory=list)
    extras: dict[str, set[str]] = field(default_factory=dict)  # "path direction json-path" -> field names

    def check(self, validator: Draft7Validator | None, instance: Any, where: str) -> None:
        self.checked += 1
        if validator is None:
            if instance not in (None, {}):
                self.extras.setdefault(f"{where} (spec: no body)", set()).update(
                    instance if isinstance(instance, dict) else ["<body>"])
            return
        for error in _leaves(validator.iter_errors(instance)):
            at = error.json_path
            if error.validator == "additionalProperties":
                known = set(error.schema.get("properties", {}))
                extra = {k for k in error.instance if k not in known} if isinstance(error.instance, dict) else set()
                site = _INDEX.sub("[]", at)
                self.extras.setdefault(f"{where} {site}", set()).update(extra)
            else:
                shown = json.dumps(error.instance, ensure_ascii=False)
                shown = shown if len(shown) <= 80 else shown[:77] + "..."
                self.violations.append(f"{where} {at}: {error.validator} {error.validator_value!r:.80} <- {shown}")

    def request(self, path: str, body: Any) -> None:
        self.check(request_validator(path), body, f"{path} request")

    def response(self, path: str, status: int, body: Any) -> None:
        self.check(response_validator(path, status), body, f"{path} {status}")

    def extra_fields(self) -> list[str]:
        return sorted(f"{where}: {', '.join(sorted(names))}" for where, names in self.extras.items())
