"""The import rules of ARCHITECTURE.md, checked on every import of the product's code (lazy ones included)."""

import textwrap
from pathlib import Path

import pytest

from tests.architecture.imports import cycles, imports_in, is_standard_library, package_graph, top_level

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = {"techbank_site", "entrypoints", "bootstrap", "accounts", "projections", "eventstore"}

# Who may import whom (ARCHITECTURE.md, "The import rule"): from the top down, never back up.
MAY_IMPORT = {
    "techbank_site": {"entrypoints"},  # the Celery app adds the worker's companions
    "entrypoints": {"bootstrap", "accounts", "projections", "eventstore"},
    "bootstrap": {"accounts", "projections", "eventstore"},
    "accounts": {"eventstore"},
    "projections": {"accounts", "eventstore"},
    "eventstore": set(),
}


@pytest.fixture(scope="module")
def product_imports():
    return imports_in(ROOT, sorted(PRODUCT))


def _where(imports) -> str:
    return "; ".join(f"{i.source}:{i.line} imports {i.module}" for i in imports)


def test_every_product_package_has_its_rule():
    on_disk = {p.name for p in ROOT.iterdir() if (p / "__init__.py").exists()} - {"tests", "bench"}
    assert on_disk == PRODUCT == set(MAY_IMPORT)


def test_the_top_level_packages_import_each_other_without_a_cycle(product_imports):
    assert cycles(package_graph(product_imports, PRODUCT)) == []


def test_each_package_imports_only_the_packages_below_it(product_imports):
    graph = package_graph(product_imports, PRODUCT)
    broken = {
        (source, target): _where(found)
        for source, targets in graph.items()
        for target, found in targets.items()
        if target not in MAY_IMPORT[source]
    }
    assert broken == {}


def test_nothing_imports_the_site_package(product_imports):
    assert (
        _where(
            i
            for i in product_imports
            if top_level(i.module) == "techbank_site" and i.source.parts[0] != "techbank_site"
        )
        == ""
    )


def test_the_domain_imports_only_the_standard_library_and_itself(product_imports):
    domain = [i for i in product_imports if i.source.parts[:2] == ("accounts", "domain")]
    assert domain, "the domain's files were not read"
    outside = [i for i in domain if not (is_standard_library(i.module) or i.module.startswith("accounts.domain"))]
    assert _where(outside) == ""


def test_the_service_layer_knows_the_adapters_only_through_its_ports(product_imports):
    service_layer = [i for i in product_imports if i.source.parts[:2] == ("accounts", "service_layer")]
    assert service_layer, "the service layer's files were not read"
    assert (
        _where(i for i in service_layer if i.module.startswith(("accounts.adapters", "accounts.models", "django")))
        == ""
    )


def test_the_read_side_takes_only_the_domain_of_the_command_side(product_imports):
    from_accounts = [
        i for i in product_imports if i.source.parts[0] == "projections" and top_level(i.module) == "accounts"
    ]
    assert _where(i for i in from_accounts if not i.module.startswith("accounts.domain")) == ""


# The checker itself: it must see what the rules forbid.


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


def test_a_cycle_made_by_an_import_inside_a_function_is_found(tmp_path):
    _write(
        tmp_path,
        {
            "low/__init__.py": "",
            "low/store.py": "def later():\n    from high.views import page\n",
            "high/__init__.py": "",
            "high/views.py": "from low import store\n",
        },
    )
    graph = package_graph(imports_in(tmp_path, ["low", "high"]), {"low", "high"})
    assert cycles(graph) == [["high", "low", "high"]]


def test_relative_imports_are_read_as_the_modules_they_name(tmp_path):
    _write(
        tmp_path,
        {"pkg/__init__.py": "", "pkg/sub/__init__.py": "", "pkg/sub/a.py": "from ..b import x\nfrom . import c\n"},
    )
    modules = {i.module for i in imports_in(tmp_path, ["pkg"])}
    assert {"pkg.b", "pkg.sub"} <= modules


def test_a_third_party_import_in_the_domain_is_not_standard_library():
    assert is_standard_library("decimal") and is_standard_library("dataclasses")
    assert not is_standard_library("django.db") and not is_standard_library("eventstore.store")
