"""What is tested is what users get: every requirements-*.txt pins every package
it installs, transitive ones too (make lock compiles them from requirements-*.in),
and the test and benchmark sets hold the product's packages at the product's versions."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PIN = re.compile(
    r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(?:\[(?P<extras>[a-z0-9,._-]+)\])?==(?P<version>[A-Za-z0-9.+!-]+)$"
)
LOCKED = [
    "requirements.txt",
    "requirements-mysql.txt",
    "requirements-dev.txt",
    "requirements-bench.txt",
    "requirements-mutation.txt",
]


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(filename: str) -> dict[str, str]:
    found = {}
    for number, raw in enumerate((ROOT / filename).read_text().splitlines(), 1):
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        match = PIN.match(line)
        assert match, f"{filename}:{number} is not one exact pin (name==version): {raw!r}"
        found[_canonical(match["name"])] = match["version"]
    return found


@pytest.mark.parametrize("filename", LOCKED)
def test_every_line_of_a_requirements_file_is_one_exact_pin(filename):
    assert pins(filename)


def test_the_product_pins_the_celery_redis_transport_and_what_it_imports():
    product = pins("requirements.txt")
    text = (ROOT / "requirements.txt").read_text()
    assert re.search(r"(?m)^celery\[redis\]==", text), "the worker's Redis transport comes with celery's redis extra"
    # kombu/transport/redis.py imports these: without packaging the worker died at start.
    assert {"kombu", "redis", "packaging", "gunicorn"} <= set(product)


def test_every_direct_dependency_in_an_in_file_is_pinned_in_its_txt_file():
    for source, locked in [
        ("requirements.in", "requirements.txt"),
        ("requirements-dev.in", "requirements-dev.txt"),
        ("requirements-bench.in", "requirements-bench.txt"),
        ("requirements-mutation.in", "requirements-mutation.txt"),
    ]:
        wanted = {}
        for raw in (ROOT / source).read_text().splitlines():
            line = raw.split("#", 1)[0].strip()
            if line and not line.startswith("-"):
                match = PIN.match(line)
                assert match, f"{source}: {raw!r}"
                wanted[_canonical(match["name"])] = match["version"]
        have = pins(locked)
        assert {name: have.get(name) for name in wanted} == wanted, f"{locked} is stale: run make lock"


@pytest.mark.parametrize(
    "layer, below",
    [
        ("requirements-dev.txt", "requirements.txt"),
        ("requirements-bench.txt", "requirements-dev.txt"),
        ("requirements-mutation.txt", "requirements-dev.txt"),
    ],
)
def test_each_layer_installs_everything_below_it_at_the_same_versions(layer, below):
    upper, lower = pins(layer), pins(below)
    assert {name: upper.get(name) for name in lower} == lower
