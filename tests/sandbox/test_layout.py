"""The stand-ins and the Ozon client stay apart from the product: the sandbox must not agree with our
client by sharing its code, and the client must know nothing of our storage (house review §4, change 3)."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OURS = ("bot", "handlers", "services", "sandbox", "bench", "tests")


def _imports(package: Path) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in sorted(package.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module)
        found[str(path.relative_to(ROOT))] = {n for n in names if n.split(".")[0] in OURS}
    return found


def test_sandbox_imports_nothing_of_the_product():
    bad = {f: sorted(n for n in names if not n.startswith("sandbox")) for f, names in _imports(ROOT / "sandbox").items()}
    assert {f: n for f, n in bad.items() if n} == {}


def test_ozon_client_imports_nothing_else_of_ours():
    bad = {f: sorted(names) for f, names in _imports(ROOT / "services" / "ozon").items()}
    assert {f: n for f, n in bad.items() if n} == {}
    assert sorted(p.name for p in (ROOT / "services" / "ozon").glob("*.py")) == [
        "__init__.py", "client.py", "errors.py", "limiter.py", "models.py"]


def test_kuaidi100_client_imports_nothing_else_of_ours():
    bad = {f: sorted(names) for f, names in _imports(ROOT / "services" / "kuaidi100").items()}
    assert {f: n for f, n in bad.items() if n} == {}
