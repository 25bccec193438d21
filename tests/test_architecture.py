"""The layers of docs/ARCHITECTURE.md, held against the code: every import in flapwatch/,
deferred ones inside functions too, read from the source and checked for a forbidden
direction."""

from __future__ import annotations

import ast
from pathlib import Path

import flapwatch

FRAMEWORKS = ("flask", "flask_login", "flask_wtf", "werkzeug")

# (the modules a rule is about, what they must never import, why)
RULES: tuple[tuple[str, tuple[str, ...], str], ...] = (
    (
        "flapwatch.domain",
        (*FRAMEWORKS, "sqlalchemy", "matplotlib", "flapwatch"),
        "the domain is plain Python: values in, values out",
    ),
    (
        "flapwatch.models",
        (*FRAMEWORKS, "flapwatch.services", "flapwatch.http", "flapwatch.web", "flapwatch.api"),
        "the models know nothing of who uses them",
    ),
    (
        "flapwatch.services",
        ("flapwatch.http", "flapwatch.web", "flapwatch.api", "flapwatch.cli"),
        "use cases are the same from a page, the API and the command line",
    ),
    (
        "flapwatch.imaging",
        (*FRAMEWORKS, "sqlalchemy", "matplotlib", "flapwatch"),
        "a photo is bytes in, bytes out",
    ),
    (
        "flapwatch.charts",
        (*FRAMEWORKS, "flapwatch.http", "flapwatch.web", "flapwatch.api"),
        "drawing takes values and returns bytes",
    ),
    (
        "flapwatch.exports",
        (*FRAMEWORKS, "flapwatch.http", "flapwatch.web", "flapwatch.api"),
        "exports write files from values",
    ),
    (
        "flapwatch.exports.fhir",
        ("flapwatch.services", "flapwatch.models", "sqlalchemy"),
        "a file format is written from plain values",
    ),
    (
        "flapwatch.exports.tables",
        ("flapwatch.services", "flapwatch.models", "sqlalchemy"),
        "a file format is written from plain values",
    ),
    (
        "flapwatch.http",
        ("flapwatch.web", "flapwatch.api"),
        "what both faces stand on knows neither",
    ),
    ("flapwatch.web", ("flapwatch.api",), "the pages never import the API"),
    ("flapwatch.api", ("flapwatch.web",), "the API never imports the pages"),
)


def _module_name(root: Path, path: Path) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(module: str, is_package: bool, tree: ast.AST) -> list[list[str]]:
    """For each module an import statement in `tree` brings in, wherever it stands, the
    names it may be known by: `from flapwatch import web` is flapwatch, or flapwatch.web."""
    found: list[list[str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend([alias.name] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".")
                if not is_package:
                    package = package[:-1]
                package = package[: len(package) - (node.level - 1)]
                base = ".".join([*package, base] if base else package)
            found.extend([base, f"{base}.{alias.name}"] for alias in node.names)
    return found


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def forbidden_imports(root: Path) -> list[str]:
    """'importer imports imported: why' for every import that breaks a rule, under the
    package directory `root`."""
    found: list[str] = []
    for path in sorted(root.rglob("*.py")):
        module = _module_name(root, path)
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        imports = _imports(module, path.name == "__init__.py", tree)
        for subject, forbidden, why in RULES:
            if not _within(module, subject):
                continue
            for names in imports:
                breaking = [
                    name
                    for name in names
                    if not _within(name, subject) and any(_within(name, f) for f in forbidden)
                ]
                if breaking:
                    found.append(f"{module} imports {breaking[0]}: {why}")
    return sorted(set(found))


def test_no_layer_imports_in_a_forbidden_direction() -> None:
    root = Path(flapwatch.__file__).parent
    assert forbidden_imports(root) == []


def test_a_forbidden_import_is_found_even_deferred_inside_a_function(tmp_path: Path) -> None:
    package = tmp_path / "flapwatch"
    files = {
        "__init__.py": "from flapwatch.web import register_web\nfrom flapwatch.api import x\n",
        "domain/__init__.py": "",
        "domain/rules.py": "from sqlalchemy import select\nfrom flapwatch.domain import text\n",
        "services/checks.py": "def record():\n    from flapwatch.http.access import actor_of\n",
        "web/__init__.py": "",
        "web/checks.py": "def save():\n    from flapwatch.api.endpoints import reply\n",
        "api/endpoints.py": "from flapwatch import web\n",
        "http/errors.py": "from ..api import schemas\n",
    }
    for name, source in files.items():
        (package / name).parent.mkdir(parents=True, exist_ok=True)
        (package / name).write_text(source)

    assert forbidden_imports(package) == [
        "flapwatch.api.endpoints imports flapwatch.web: the API never imports the pages",
        "flapwatch.domain.rules imports sqlalchemy: the domain is plain Python: values in, "
        "values out",
        "flapwatch.http.errors imports flapwatch.api: what both faces stand on knows neither",
        "flapwatch.services.checks imports flapwatch.http.access: use cases are the same from "
        "a page, the API and the command line",
        "flapwatch.web.checks imports flapwatch.api.endpoints: the pages never import the API",
    ]
