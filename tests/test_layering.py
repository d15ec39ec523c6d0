"""Dependencies point one way: app -> pipeline, training, eval -> jobs, models -> store (DESIGN §2)."""

import ast

from tests.support import ROOT

DOMAINS = {"pipeline", "training", "eval"}
PACKAGES = ["store", "jobs", "models", "pipeline", "training", "eval", "app"]
UI = {"app", "streamlit"}
HEAVY = {"torch", "transformers", "peft"}
FORBIDDEN = {
    "store": {"jobs", "models", *DOMAINS, *UI, *HEAVY},
    "jobs": {"models", *DOMAINS, *UI, *HEAVY},  # the job runtime imports only store
    "models": {"jobs", *DOMAINS, *UI},
    # A domain package imports no other domain package: what two of them share moves down a floor.
    **{d: {*(DOMAINS - {d}), *UI} for d in DOMAINS},
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


def breaches(package: str, source: str, where: str = "<source>") -> list[str]:
    """The layering breaches of one module of ``package`` (any import, at any depth, counts)."""
    tree = ast.parse(source, filename=where)
    bad = _imports(tree, False) & FORBIDDEN[package]
    bad |= _imports(tree, True) & NO_TOP_LEVEL.get(package, set())
    return [f"{where} imports {sorted(bad)}"] if bad else []


def test_no_import_breaks_the_layering():
    found = []
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            found += breaches(package, path.read_text(), str(path.relative_to(ROOT)))
    assert not found, "\n".join(found)


def test_the_layering_check_can_fail():
    """Each rule catches what it forbids, also inside a function, and lets what it allows pass."""
    assert breaches("eval", "def f():\n    from training.jobs import launch\n")
    assert breaches("pipeline", "import eval.rouge\n")
    assert breaches("training", "from pipeline import llm\n")
    assert breaches("jobs", "from training.config import TrainConfig\n")
    assert breaches("jobs", "from models.safe_load import require_safetensors_model\n")
    assert breaches("store", "def f():\n    import jobs.process\n")
    assert breaches("app", "import torch\n")
    assert not breaches(
        "eval", "from jobs.process import launch\nfrom models.registry import resolve_model\n"
    )
    assert not breaches("app", "def f():\n    import torch\n")


def test_nothing_imports_app():
    for package in PACKAGES[:-1]:
        for path in (ROOT / package).rglob("*.py"):
            assert "app" not in _imports(ast.parse(path.read_text()), False), path


def bare_expressions(source: str) -> list[int]:
    """Lines of bare non-call expressions anywhere in ``source``: Streamlit's magic echoes them inside
    functions, ``if`` and ``with`` blocks too (a ternary of two calls once dumped DeltaGenerator's help)."""
    return [
        node.lineno
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Expr) and not isinstance(node.value, (ast.Call, ast.Constant, ast.Await))
    ]


def test_pages_have_no_bare_expressions():
    bare = [
        f"{path.relative_to(ROOT)}:{line}"
        for path in (ROOT / "app").rglob("*.py")
        for line in bare_expressions(path.read_text())
    ]
    assert not bare, bare


def test_the_bare_expression_check_sees_nested_blocks():
    # The Train page's config diff as it was: a ternary statement inside an ``if`` inside a function.
    page = (
        "def run_history(rows):\n"
        "    if rows:\n"
        "        st.dataframe(rows) if rows else st.caption('Same config.')\n"
        "    with st.expander('x'):\n"
        "        rows\n"
    )
    assert bare_expressions(page) == [3, 5]
    assert bare_expressions('st.write("x")\n"""A docstring."""\n') == []


def environment_reads(source: str) -> list[int]:
    """Lines that read a variable from os.environ (``.get``, ``[...]`` loads, ``in``), not writes."""
    tree = ast.parse(source)
    lines = []
    for node in ast.walk(tree):
        target = getattr(node, "func", None) if isinstance(node, ast.Call) else node
        if (
            isinstance(node, ast.Call)
            and isinstance(target, ast.Attribute)
            and target.attr in ("get", "getenv")
        ):
            owner = target.value
            if (isinstance(owner, ast.Attribute) and owner.attr == "environ") or target.attr == "getenv":
                lines.append(node.lineno)
        elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load):
            if isinstance(node.value, ast.Attribute) and node.value.attr == "environ":
                lines.append(node.lineno)
        elif isinstance(node, ast.Compare) and any(isinstance(op, ast.In | ast.NotIn) for op in node.ops):
            if any(isinstance(c, ast.Attribute) and c.attr == "environ" for c in node.comparators):
                lines.append(node.lineno)
    return lines


def test_environment_variables_are_read_in_store_env_only():
    reads = [
        f"{path.relative_to(ROOT)}:{line}"
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if path.relative_to(ROOT).as_posix() != "store/env.py"
        for line in environment_reads(path.read_text())
    ]
    assert not reads, reads


def test_the_environment_check_can_fail():
    assert environment_reads(
        'import os\nx = os.environ.get("A")\ny = os.environ["B"]\nz = "C" in os.environ\n'
    ) == [2, 3, 4]
    assert environment_reads('import os\nos.environ["A"] = "1"\nos.environ.pop("B", None)\n') == []
