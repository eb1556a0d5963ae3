"""The house's direction (docs/architecture.md): api -> core -> (domain, store, storage,
runners) -> gan_engine, and the client apart. Read from the import statements themselves."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WEB = ("fastapi", "starlette")


def _imports(path: Path, *, top_level_only: bool = False) -> set[str]:
    """Absolute names of the modules ``path`` imports (relative imports resolved)."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    names: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def _modules(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


def _reaches(names: set[str], prefix: str) -> bool:
    return any(n == prefix or n.startswith(prefix + ".") for n in names)


@pytest.mark.parametrize("path", _modules("service"), ids=lambda p: str(p.relative_to(ROOT)))
def test_only_the_http_edge_speaks_the_web_framework(path: Path) -> None:
    edge = path.is_relative_to(ROOT / "service" / "api") or path.name in ("__main__.py", "main.py")
    if not edge:
        assert not any(_reaches(_imports(path), web) for web in WEB)


@pytest.mark.parametrize(
    ("floor", "never"),
    [
        ("service/domain", ("service.api", "service.core", "service.store", "service.runners")),
        ("service/domain", ("service.storage",)),
        ("service/core", ("service.api",)),
        ("service/store", ("service.api", "service.core", "service.runners")),
        ("service/storage", ("service.api", "service.core", "service.runners")),
        ("service/runners", ("service.api", "service.core")),
        ("service/api/routes", ("service.store", "service.storage", "service.runners")),
        ("gan_engine", ("service", "curvegan")),
    ],
)
def test_no_arrow_runs_back_up(floor: str, never: tuple[str, ...]) -> None:
    for path in _modules(floor):
        names = _imports(path)
        for up in never:
            assert not _reaches(names, up), f"{path.relative_to(ROOT)} imports {up}"


def test_the_client_imports_neither_server_nor_engine_at_module_level() -> None:
    for path in _modules("curvegan"):
        names = _imports(path, top_level_only=True)
        for other in ("service", "gan_engine", "torch", *WEB):
            assert not _reaches(names, other), f"{path.relative_to(ROOT)} imports {other}"
