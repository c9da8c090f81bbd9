"""The core stays pure: no web framework, no database, no HTTP client, no clock reads.

It imports the standard library and, besides it, only phonenumbers, Babel and Jinja2: pure libraries that do no
I/O (number parsing, locale data, the template sandbox), so the core still runs and tests without any service.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

CORE = Path(__file__).resolve().parents[2] / "connector" / "core"
FORBIDDEN = ("flask", "sqlalchemy", "requests", "werkzeug", "apscheduler", "psycopg")
ALLOWED = ("phonenumbers", "babel", "jinja2")


def test_importing_the_core_loads_no_framework():
    modules = sorted(f"connector.core.{p.stem}" for p in CORE.glob("*.py") if p.stem != "__init__")
    code = (f"import sys; import {', '.join(modules)}; "
            f"print(sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r}))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            cwd=CORE.parents[1])
    assert result.stdout.strip() == "[]"


def test_the_core_never_reads_the_clock():
    for path in CORE.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        calls = {f"{node.func.value.id}.{node.func.attr}" for node in ast.walk(tree)
                 if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                 and isinstance(node.func.value, ast.Name)}
        assert not calls & {"datetime.now", "datetime.utcnow", "date.today", "time.time"}, path.name


def test_the_core_imports_only_the_standard_library_and_the_allowed_pure_libraries():
    for path in CORE.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
        names += [node.module for node in ast.walk(tree)
                  if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module]
        outside = {name for name in names if name.split(".")[0] not in sys.stdlib_module_names
                   and name.split(".")[0] not in ALLOWED and not name.startswith("connector.core")}
        assert not outside, f"{path.name} imports {sorted(outside)}"
