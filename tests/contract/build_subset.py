"""Rebuild or extend tests/fixtures/ozon-openapi-subset.json from copies of Ozon's published spec.

Ozon publishes its Seller API as one OpenAPI 3.0 document (docs.ozon.ru/api/seller/swagger.json);
public repositories mirror it at various dates. Give this script one or more copies, each labelled
with the letter it has (or gets) in the subset's ``x-sources``, and the methods wanted::

    python -m tests.contract.build_subset \\
        --copy A=/path/to/phpsoftbox-ozon/docs/swagger.json \\
        --add /v3/product/info/list --add /v2/posting/fbs/get-by-barcode

Every method keeps the copy it came from unless that copy is given again; a new method comes from the
newest given copy that has it (dates from ``x-sources``). Each method brings its request and response
schemas and every schema they reach through ``$ref``; a schema already in the subset is kept as it is
(a newer copy's). Nothing is invented: a method no given copy has is reported and left out.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

SUBSET = Path(__file__).resolve().parents[1] / "fixtures" / "ozon-openapi-subset.json"


def refs(node: Any) -> set[str]:
    """Names of the component schemas ``node`` refers to directly."""
    found: set[str] = set()
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/"):
            found.add(ref)
        for value in node.values():
            found |= refs(value)
    elif isinstance(node, list):
        for value in node:
            found |= refs(value)
    return found


def reachable(copy: dict[str, Any], start: Any) -> dict[str, dict[str, Any]]:
    """Every component (``schemas`` or ``requestBodies``) reachable from ``start``: {ref: definition}."""
    out: dict[str, dict[str, Any]] = {}
    todo = sorted(refs(start))
    while todo:
        ref = todo.pop()
        if ref in out:
            continue
        _, _, kind, name = ref.split("/", 3)
        out[ref] = copy["components"][kind][name]
        todo.extend(sorted(refs(out[ref]) - set(out)))
    return out


def extend(subset: dict[str, Any], copies: dict[str, dict[str, Any]], wanted: list[str]) -> list[str]:
    """Add ``wanted`` methods to ``subset`` in place; returns the ones no copy has."""
    newest_first = sorted(copies, key=lambda label: str(subset["x-sources"][label].get("date", "")), reverse=True)
    missing = []
    for path in wanted:
        label = next((c for c in newest_first if "post" in copies[c]["paths"].get(path, {})), None)
        if label is None:
            missing.append(path)
            continue
        operation = json.loads(json.dumps(copies[label]["paths"][path]["post"]))
        operation.pop("parameters", None)  # Client-Id / Api-Key headers: the same for every method
        operation["x-source"] = label
        for ref, definition in reachable(copies[label], operation).items():
            _, _, kind, name = ref.split("/", 3)
            slot = subset["components"].setdefault(kind, {})
            if name not in slot:
                slot[name] = {**definition, "x-source": label}
        subset["paths"][path] = {"post": operation}
    subset.setdefault("x-capability-calls", [])
    subset["x-capability-calls"] = sorted(set(subset["x-capability-calls"]) | (set(wanted) - set(missing)))
    return missing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.contract.build_subset", description=__doc__.split("\n")[0])
    parser.add_argument("--copy", action="append", default=[], metavar="LABEL=PATH", help="a copy of the spec")
    parser.add_argument("--add", action="append", default=[], metavar="PATH", help="a method to take in")
    parser.add_argument("--subset", type=Path, default=SUBSET)
    args = parser.parse_args(argv)
    subset = json.loads(args.subset.read_text(encoding="utf-8"))
    copies = {}
    for item in args.copy:
        label, _, path = item.partition("=")
        if label not in subset["x-sources"]:
            parser.error(f"copy {label}: describe it in x-sources first (repo, path, commit, date)")
        copies[label] = json.loads(Path(path).read_text(encoding="utf-8"))
    missing = extend(subset, copies, args.add)
    args.subset.write_text(json.dumps(subset, ensure_ascii=False, indent=1), encoding="utf-8")
    for path in missing:
        print(f"not in any given copy, left out: {path}", file=sys.stderr)
    return 1 if missing else 0


if __name__ == "__main__":
    raise SystemExit(main())
