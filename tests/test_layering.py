"""Dependencies point one way: app -> pipeline, training, eval -> store (DESIGN §2)."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ["store", "pipeline", "training", "eval", "app"]
FORBIDDEN = {
    "store": {"pipeline", "training", "eval", "app", "streamlit", "torch", "transformers", "peft"},
    "pipeline": {"app", "streamlit", "eval"},
    "training": {"app", "streamlit", "pipeline", "eval"},
    "eval": {"app", "streamlit", "pipeline"},
    "app": set(),
}
# app/ and store/ import no torch at module load, so pages stay fast.
NO_TOP_LEVEL = {"app": {"torch", "transformers", "peft", "accelerate", "datasets"}}


def _imports(tree: ast.AST, top_level_only: bool) -> set[str]:
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    names = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_no_import_breaks_the_layering():
    breaches = []
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            tree = ast.parse(path.read_text(), filename=str(path))
            bad = _imports(tree, False) & FORBIDDEN[package]
            bad |= _imports(tree, True) & NO_TOP_LEVEL.get(package, set())
            if bad:
                breaches.append(f"{path.relative_to(ROOT)} imports {sorted(bad)}")
    assert not breaches, "\n".join(breaches)


def test_nothing_imports_app():
    for package in PACKAGES[:-1]:
        for path in (ROOT / package).rglob("*.py"):
            assert "app" not in _imports(ast.parse(path.read_text()), False), path


def test_pages_have_no_bare_expressions():
    """Streamlit's magic echoes any bare non-call expression on a page (a ternary once showed "None")."""
    bare = []
    for path in (ROOT / "app").rglob("*.py"):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Expr) and not isinstance(node.value, (ast.Call, ast.Constant)):
                bare.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not bare, bare
