"""The layers of the tree, checked on every import (top-level and inside functions).

    core      portal/core: settings, database, clock, errors, audit vocabulary, passwords
    models    models/: the entities (may read the clock from core)
    services  portal/services: every business rule and business term
    web       portal/web: HTTP plumbing shared by the faces
    ops       portal/ops: seed, backup, integrity check (command-line tools over services)
    faces     views/ (staff admin), portal/patient_pages/ (patients), and the faces still to
              come (portal/api, portal/fhir, portal/workers): over services, never each other
    root      portal/app.py (the only module that knows both faces), portal/cli.py, main.py

See docs/ARCHITECTURE.md. A new package must be placed in ``LAYERS`` before it can import.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: Layer name -> module prefix.
PREFIXES = {
    "core": "portal.core", "models": "models", "services": "portal.services", "web": "portal.web",
    "ops": "portal.ops", "admin": "views", "patient_pages": "portal.patient_pages", "api": "portal.api",
    "fhir": "portal.fhir", "workers": "portal.workers", "app": "portal.app", "cli": "portal.cli",
    "migrations": "migrations", "main": "main", "package": "portal",
}
_BELOW_FACES = {"core", "models", "services", "web"}
#: Layer -> the layers it may import (itself always allowed).
LAYERS: dict[str, set[str]] = {
    "core": set(),
    "models": {"core"},
    "services": {"core", "models"},
    "web": {"core", "models", "services"},
    "ops": {"core", "models", "services"},
    "admin": _BELOW_FACES,
    "patient_pages": _BELOW_FACES,
    "api": _BELOW_FACES,
    "fhir": _BELOW_FACES | {"api"},  # the FHIR face may reuse the API's authentication
    "workers": _BELOW_FACES,
    "app": set(PREFIXES) - {"cli", "main", "migrations"},
    "cli": {"core", "models", "services", "ops"},
    "migrations": {"core", "models"},
    "main": {"cli"},
    "package": set(),  # portal/__init__.py imports nothing
}


def layer_of(module: str) -> str | None:
    """The layer of a dotted module name (longest prefix), or None outside the project."""
    best = None
    for name, prefix in PREFIXES.items():
        if (module == prefix or module.startswith(prefix + ".")) and (best is None or len(prefix) > len(PREFIXES[best])):
            best = name
    return best


def _module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path, root: Path = ROOT) -> list[tuple[int, str]]:
    """(line, imported module) of every import in ``path``, relative imports resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = _module_name(path, root).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            found.append((node.lineno, base))
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return found


def _project_files(root: Path = ROOT) -> list[Path]:
    files = [root / "main.py"] if (root / "main.py").exists() else []
    for top in ("portal", "models", "views", "migrations"):
        files += sorted((root / top).rglob("*.py"))
    return files


def violations(root: Path = ROOT) -> list[str]:
    """Every import in the tree at ``root`` that points against the layers."""
    wrong = []
    for path in _project_files(root):
        here = layer_of(_module_name(path, root))
        for line, module in _imports(path, root):
            there = layer_of(module)
            if there in (None, here, "package") or here is None:
                continue
            if there not in LAYERS[here]:
                wrong.append((str(path.relative_to(root)), line, f"{here} imports {module} ({there})"))
    first = {}
    for path, line, what in sorted(wrong):
        first.setdefault((path, line), what)  # one report per import statement
    return [f"{path}:{line}: {what}" for (path, line), what in first.items()]


def test_every_module_belongs_to_a_layer():
    assert [str(p.relative_to(ROOT)) for p in _project_files() if layer_of(_module_name(p)) is None] == []


def test_no_import_points_against_the_layers():
    wrong = violations()
    assert wrong == [], "imports against the layers (see docs/ARCHITECTURE.md):\n" + "\n".join(wrong)


def test_the_checker_sees_a_wrong_arrow(tmp_path):
    """The rule is real: on a throwaway tree, a service importing the admin, a face
    importing the other face and the core importing a service are each caught."""
    files = {
        "portal/services/booking.py": "from views.dashboard import dashboard\n",
        "portal/patient_pages/routes.py": "def f():\n    from views import create_admin\n",
        "portal/core/db.py": "from ..services import audit\n",
        "views/ok.py": "from portal.services import booking\nfrom portal.core import clock\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    found = violations(tmp_path)
    assert [line.split(": ", 1)[0] for line in found] == [
        "portal/core/db.py:1", "portal/patient_pages/routes.py:2", "portal/services/booking.py:1"]
