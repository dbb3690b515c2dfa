"""Import contracts between the daemon and the TUI, checked statically and at run time.

- The `appliance` package never imports Textual. The one place it may reach the TUI is
  `appliance tui` in appliance/cli.py, and only lazily (inside a function).
- The `tui` package talks to the daemon over HTTP only: it never imports the daemon's
  engines, tiers, API or store (appliance.client, a plain HTTP client, is allowed).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN_IN_TUI = ("appliance.engines", "appliance.tiers", "appliance.api", "appliance.store")


def imports(path: Path) -> Iterator[tuple[str, bool]]:
    """(module, at module level) for every import in a file, relative ones resolved."""
    tree = ast.parse(path.read_text(), str(path))
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    top_level = {id(node) for node in tree.body}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, id(node) in top_level
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            yield module, id(node) in top_level
            for alias in node.names:  # `from appliance import engines`
                yield f"{module}.{alias.name}", id(node) in top_level


def within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def test_the_daemon_never_imports_textual() -> None:
    files = sorted((ROOT / "appliance").rglob("*.py"))
    assert files
    bad = []
    for path in files:
        for module, top in imports(path):
            if within(module, "textual"):
                bad.append(f"{path.relative_to(ROOT)}: {module}")
            if within(module, "tui") and (path.name != "cli.py" or top):
                bad.append(f"{path.relative_to(ROOT)}: {module} (only cli.py, lazily)")
    assert not bad, bad


def test_the_tui_never_imports_engine_tier_api_or_store_code() -> None:
    files = sorted((ROOT / "tui").rglob("*.py"))
    assert len(files) > 5
    bad = [
        f"{path.relative_to(ROOT)}: {module}"
        for path in files
        for module, _top in imports(path)
        if any(within(module, prefix) for prefix in FORBIDDEN_IN_TUI)
    ]
    assert not bad, bad


def loaded_after(code: str) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys, json\nprint(json.dumps(sorted(sys.modules)))"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    return list(json.loads(out.strip().splitlines()[-1]))


def test_at_run_time_too() -> None:
    """Transitively: what each side really loads."""
    daemon = loaded_after("import appliance.cli, appliance.api.app")
    assert "appliance.api.app" in daemon
    assert not [m for m in daemon if within(m, "textual")]
    tui = loaded_after("import tui.app")
    assert "textual" in tui and "tui.app" in tui
    assert not [m for m in tui if any(within(m, p) for p in FORBIDDEN_IN_TUI)]
