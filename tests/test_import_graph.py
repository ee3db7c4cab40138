"""
The package's import graph runs one way: no module imports a module of a higher floor.

Floors (low to high), read from every ``import`` statement of ``acar_d2/`` (including the ones
inside functions), without importing anything:

    0  acar_d2.utils                       (helpers importing no other part of acar_d2)
    1  acar_d2.config, acar_d2.structures, acar_d2.checkpoint
    2  acar_d2.data, acar_d2.modeling      (siblings: neither imports the other)
    3  acar_d2.evaluation, acar_d2.export
    4  acar_d2.engine
    5  acar_d2.model_zoo (configs + weights -> built models), acar_d2 (the package root, which
       imports everything to register it)

Nothing in the library imports ``tools``, ``demo`` or the evaluator's command line
(``ava_eval.cli`` / ``ava_eval.__main__``, the command ``acar-ava-eval``).
"""
import ast
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "acar_d2"

FLOORS = {
    "utils": 0,
    "config": 1,
    "structures": 1,
    "checkpoint": 1,
    "data": 2,
    "modeling": 2,
    "evaluation": 3,
    "export": 3,
    "engine": 4,
    "model_zoo": 5,
}
ROOT_FLOOR = 5
# Same floor, still not allowed to import each other.
SEPARATED = {frozenset({"data", "modeling"})}
OUTSIDE_LIBRARY = ("tools", "demo")
COMMAND_LINES = ("ava_eval.cli", "ava_eval.__main__")


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path):
    """(imported module, line) for every import statement of one file, relative ones resolved."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                prefix = ".".join(base)
                if node.module:
                    yield f"{prefix}.{node.module}", node.lineno
                else:
                    for alias in node.names:
                        yield f"{prefix}.{alias.name}", node.lineno
            else:
                yield node.module, node.lineno


def _subpackage(module: str):
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def import_edges():
    """(importer file, importer module, imported module, line) for every acar_d2 / tools import."""
    for path in sorted(PACKAGE.rglob("*.py")):
        for target, line in _imports(path):
            yield path, _module_name(path), target, line


def _violation(importer: str, target: str):
    top = target.split(".")[0]
    if top in OUTSIDE_LIBRARY or target.startswith(COMMAND_LINES):
        return "the library imports a command-line entry"
    if top != "acar_d2":
        return None
    src, dst = _subpackage(importer), _subpackage(target)
    if src == dst:
        return None
    src_floor = FLOORS.get(src, ROOT_FLOOR) if src is not None else ROOT_FLOOR
    dst_floor = FLOORS.get(dst, ROOT_FLOOR) if dst is not None else ROOT_FLOOR
    assert src is None or src in FLOORS, f"{importer}: subpackage '{src}' has no floor in FLOORS"
    assert dst is None or dst in FLOORS, f"{target}: subpackage '{dst}' has no floor in FLOORS"
    if dst_floor > src_floor:
        return f"floor {src_floor} ({src}) imports floor {dst_floor} ({dst or 'acar_d2'})"
    if frozenset({src, dst}) in SEPARATED:
        return f"{src} and {dst} must not import each other"
    return None


def test_imports_run_downward_only():
    bad = []
    for path, importer, target, line in import_edges():
        why = _violation(importer, target)
        if why:
            bad.append(f"{path.relative_to(REPO)}:{line}: {importer} -> {target}: {why}")
    assert not bad, "imports running back up:\n" + "\n".join(bad)


@pytest.mark.parametrize(
    "importer,target,ok",
    [
        ("acar_d2.modeling.meta_arch.acar_net", "acar_d2.data.clip_mapper", False),
        ("acar_d2.data.clip_mapper", "acar_d2.modeling.person_detector", False),
        ("acar_d2.data.synthetic.writer", "acar_d2.utils.visualizer", True),
        ("acar_d2.utils.visualizer", "acar_d2.modeling.relation_maps", False),
        ("acar_d2.utils.cli", "acar_d2.checkpoint", False),
        ("acar_d2.data.validate", "acar_d2", False),
        ("acar_d2.engine.video_predictor", "acar_d2.data.clip_mapper", True),
        ("acar_d2.modeling.meta_arch.acar_net", "acar_d2.structures", True),
        ("acar_d2.utils.visualizer", "tools.demo", False),
        ("acar_d2.engine.defaults", "demo.predictor", False),
        ("acar_d2.evaluation.ava_evaluation", "ava_eval.cli", False),
        ("acar_d2.evaluation.ava_evaluation", "ava_eval.frame_map", True),
    ],
)
def test_the_rule_itself(importer, target, ok):
    """The checker flags what the issue names (so an empty report means something)."""
    assert (_violation(importer, target) is None) == ok, (importer, target, _violation(importer, target))


def test_every_subpackage_has_a_floor():
    subpackages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    modules = {p.stem for p in PACKAGE.glob("*.py") if p.name != "__init__.py"}
    missing = (subpackages | modules) - set(FLOORS)
    assert not missing, f"give these a floor in FLOORS: {sorted(missing)}"


def test_evaluator_package_is_numpy_only():
    """``ava_eval`` (with its command line ``acar-ava-eval`` / ``python -m ava_eval``) imports
    neither torch, detectron2 nor acar_d2: the command starts without them, with no
    ``sys.modules`` tricks."""
    allowed_third_party = {"numpy", "matplotlib"}
    files = sorted((REPO / "ava_eval").rglob("*.py"))
    assert REPO / "ava_eval" / "__main__.py" in files
    bad = []
    for path in files:
        source = path.read_text()
        assert "sys.modules[" not in source, f"{path}: writes sys.modules"
        for target, line in _imports(path):
            top = target.split(".")[0]
            if top in ("ava_eval", "__future__") or top in sys.stdlib_module_names:
                continue
            if top not in allowed_third_party:
                bad.append(f"{path.relative_to(REPO)}:{line}: imports {target}")
    assert not bad, "\n".join(bad)


# Within acar_d2.engine, the video predictors sit on one base: key_frame_stream (the key-frame
# loop) <- bank_extraction (pass 1 of a bank model) <- video_predictor (actions, tracking, the two
# passes). A module imports only modules left of it, so the base never creates its subclass.
ENGINE_VIDEO_LAYERS = ("acar_d2.engine.key_frame_stream", "acar_d2.engine.bank_extraction",
                       "acar_d2.engine.video_predictor")


def test_engine_video_modules_are_layered():
    bad = []
    for path, importer, target, line in import_edges():
        if importer in ENGINE_VIDEO_LAYERS and target in ENGINE_VIDEO_LAYERS:
            if ENGINE_VIDEO_LAYERS.index(target) >= ENGINE_VIDEO_LAYERS.index(importer):
                bad.append(f"{path.relative_to(REPO)}:{line}: {importer} -> {target}")
    assert not bad, "engine video modules import upward:\n" + "\n".join(bad)


def _module_cycles(edges):
    """The import cycles of a graph ``{module: {imported modules}}`` (each once, as a sorted list)."""
    cycles, state = set(), {}

    def visit(node, path):
        state[node] = "open"
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                cycles.add(tuple(sorted(path[path.index(nxt):])))
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    return sorted(cycles)


def test_no_import_cycle_between_modules():
    """No two modules of acar_d2 import each other, directly or around a circle (imports inside
    functions included: a lazy import hides a circle, it does not remove it). Package
    ``__init__`` files, which re-export their children, are left out."""
    edges = {}
    for path, importer, target, _ in import_edges():
        if path.name == "__init__.py" or not target.startswith("acar_d2."):
            continue
        file = REPO.joinpath(*target.split(".")).with_suffix(".py")
        if file.is_file():
            edges.setdefault(importer, set()).add(target)
    cycles = _module_cycles(edges)
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_the_cycle_finder_finds_a_circle():
    assert _module_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [("a", "b", "c")]
    assert _module_cycles({"scene": {"relation_rows"}, "relation_rows": {"scene"}}) == [
        ("relation_rows", "scene")]
    assert _module_cycles({"a": {"b"}, "b": set(), "c": {"a", "b"}}) == []


def test_utils_is_the_lowest_floor():
    """``acar_d2.utils`` imports nothing of acar_d2 (as ``detectron2.utils``, every other
    subpackage may use it), and its ``__init__`` docstring lists each of its modules."""
    bad = [f"{path.relative_to(REPO)}:{line}: {target}"
           for path, importer, target, line in import_edges()
           if _subpackage(importer) == "utils" and target.split(".")[0] == "acar_d2"
           and _subpackage(target) != "utils"]
    assert not bad, "acar_d2.utils imports the project:\n" + "\n".join(bad)
    assert min(FLOORS.values()) == FLOORS["utils"] and list(FLOORS.values()).count(0) == 1
    doc = ast.get_docstring(ast.parse((PACKAGE / "utils" / "__init__.py").read_text())) or ""
    modules = sorted(p.name for p in (PACKAGE / "utils").glob("*.py") if p.name != "__init__.py")
    undocumented = [m for m in modules if f"``{m}``" not in doc]
    assert not undocumented, f"acar_d2/utils/__init__.py does not describe {undocumented}"


def test_relation_maps_sit_beside_the_model():
    """The relation-map recorder is modeling code (it hooks the model), not a utility: one module,
    ``acar_d2/modeling/relation_maps.py``, importing only the model's own parts."""
    targets = {target for path, importer, target, _ in import_edges()
               if importer == "acar_d2.modeling.relation_maps" and target.startswith("acar_d2")}
    assert targets and all(t.startswith("acar_d2.modeling.") for t in targets), targets
    assert not (PACKAGE / "utils" / "relations.py").exists()
