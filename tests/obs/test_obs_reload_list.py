"""Tools → Scripts → Reload picks up edits: the script's reload list names every module of the plugin and
of the shared protocol package (but the three kept for the life of OBS), each after the modules it imports."""
from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "obs_plugin" / "m2fp_obs_filter.py"
PACKAGES = {"m2fp_obs": REPO / "obs_plugin" / "m2fp_obs", "m2fp_protocol": REPO / "shared" / "m2fp_protocol"}
#: kept across reloads (the script's comment says why): the C callbacks, the ctypes types, the started servers
NEVER = {"m2fp_obs.registration", "m2fp_obs.libobs", "m2fp_obs.launcher"}


def reload_list() -> list[str]:
    for node in ast.walk(ast.parse(SCRIPT.read_text())):
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "_RELOADABLE"
                                                for t in node.targets):
            return [ast.literal_eval(e) for e in node.value.elts]  # type: ignore[attr-defined]
    raise AssertionError("no _RELOADABLE in the script")


def module_name(package: str, path: Path) -> str:
    return package if path.stem == "__init__" else f"{package}.{path.stem}"


def imports_of(package: str, path: Path) -> set[str]:
    """Our modules that ``path`` imports at module level (relative, or the packages by name)."""
    found: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom):
            if node.level == 1:
                base = package if not node.module else f"{package}.{node.module}"
                found.add(base)
                found.update(f"{package}.{a.name}" for a in node.names)
            elif node.module and node.module.split(".")[0] in PACKAGES:
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] in PACKAGES)
    return found


def all_modules() -> dict[str, Path]:
    return {module_name(p, f): f for p, d in PACKAGES.items() for f in sorted(d.glob("*.py"))}


def test_every_module_is_reloaded_but_the_three_kept():
    listed = reload_list()
    expected = set(all_modules()) - NEVER - {"m2fp_obs"}  # the plugin's package module is a docstring
    assert sorted(expected - set(listed)) == [], "missing from the script's reload list"
    assert sorted(set(listed) - expected) == [], "listed but kept or not a module"
    assert len(listed) == len(set(listed))


def test_each_module_is_reloaded_after_what_it_imports():
    listed = reload_list()
    pos = {m: i for i, m in enumerate(listed)}
    mods = all_modules()
    late = [(m, dep) for m in listed for dep in imports_of(m.split(".")[0], mods[m])
            if dep in pos and pos[dep] > pos[m]]
    assert late == [], "these would keep the old module they import (module, import)"
