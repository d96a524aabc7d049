"""docs/architecture.md's "What each may import" against the code: every import of a project package, in every
module of each package the table lists, is one the table allows (its `may import` column names it in backticks)
and none its `never` column names. Read with ast: nothing is imported."""

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FOLDERS = {"deepdream_common": "deepdream_common", "bench": "bench", "deepdream_client": "daemon/deepdream_client",
           "dream_engine": "dream_engine", "deepdream_daemon": "daemon/deepdream_daemon",
           "deepdream_cli": "daemon/deepdream_cli", "installer": "installer", "gimp_plugin": "gimp_plugin/deepdream"}
PROJECT = set(FOLDERS) | {"bench", "tests"}


def table():
    """{package: (allowed project packages, forbidden ones)} from the architecture page."""
    text = (REPO / "docs" / "architecture.md").read_text()
    section = text[text.index("## What each may import"):]
    section = section[:section.index("\n## ", 3)]
    rows = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0].strip("`") in set(FOLDERS) - {"bench"}:
            named = [set(re.findall(r"`([\w.]+)`", cell)) & PROJECT for cell in cells[1:]]
            rows[cells[0].strip("`")] = tuple(named)
    return rows


def project_imports(package):
    """{module file: project packages it imports}; a package's own modules (and the plug-in's siblings) left out."""
    folder = REPO / FOLDERS[package]
    siblings = {path.stem for path in folder.glob("*.py")} if package == "gimp_plugin" else set()
    found = {}
    for path in sorted(folder.rglob("*.py")):
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
        found[path.relative_to(REPO)] = (names & PROJECT) - {package} - siblings
    return found


def test_the_import_table_lists_every_package_and_the_code_keeps_to_it():
    rows = table()
    assert set(rows) == set(FOLDERS) - {"bench"}, f"the table's packages: {sorted(rows)}"
    for package, (allowed, forbidden) in rows.items():
        assert not allowed & forbidden, package
        for module, imported in project_imports(package).items():
            assert imported <= allowed, f"{module} imports {sorted(imported - allowed)}, which the table does not allow"
            assert not imported & forbidden, f"{module} imports {sorted(imported & forbidden)}: the table says never"


def test_the_shared_facts_import_nothing_of_the_project():
    assert not any(project_imports("deepdream_common").values())


def test_bench_never_imports_the_tests():
    """One way: the tests use bench's daemon starter and generators; a benchmark needs nothing of the tests."""
    imported = {module: names for module, names in project_imports("bench").items() if "tests" in names}
    assert not imported, imported
