"""The kept secret key (no TECHBANK_SECRET_KEY): processes that start together,
as gunicorn's workers do, all get the same whole key, in a file only its owner reads."""

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from techbank_site.settings import kept_secret_key

ROOT = Path(__file__).resolve().parents[2]
PROCESSES = 10
ROUNDS = 3
# Each process imports the settings, says it is ready, and makes or reads the key only
# when told to go, so that all of them reach the key file at the same moment.
RACER = """
import sys
from pathlib import Path
from techbank_site.settings import kept_secret_key
print("ready", flush=True)
sys.stdin.readline()
try:
    print("key", kept_secret_key(Path(sys.argv[1])), flush=True)
except Exception as error:
    print("error", repr(error), flush=True)
"""


def race(key_file: Path) -> list[str]:
    # The checkout's own key is not touched: the settings take this one when they import.
    env = {**os.environ, "TECHBANK_SECRET_KEY": "only-so-that-settings-import", "PYTHONPATH": str(ROOT)}
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, str(key_file)],
            cwd=ROOT,
            env=env,
            text=True,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        for _ in range(PROCESSES)
    ]
    try:
        for racer in racers:
            assert racer.stdout.readline().strip() == "ready"
        for racer in racers:
            racer.stdin.write("go\n")
            racer.stdin.flush()
        return [racer.communicate(timeout=60)[0].strip() for racer in racers]
    finally:
        for racer in racers:
            if racer.poll() is None:
                racer.kill()
                racer.wait()


@pytest.mark.parametrize("round_number", range(ROUNDS))
def test_processes_starting_together_all_get_the_same_whole_key_kept_owner_only(tmp_path, round_number):
    key_file = tmp_path / ".secret_key"
    answers = race(key_file)
    assert len(set(answers)) == 1, f"the processes got different keys or errors: {sorted(set(answers))}"
    kind, key = answers[0].split(" ", 1)
    assert kind == "key" and len(key) >= 50
    assert key_file.read_text().strip() == key
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert [path.name for path in tmp_path.iterdir()] == [".secret_key"], "a candidate file was left behind"


def test_a_process_that_found_no_key_while_another_made_one_takes_that_key_rather_than_replacing_it(
    tmp_path, monkeypatch
):
    # The interleaving the race above hits only now and then, made certain: this process looked
    # for the file just before the other one's key landed there, so it goes on to make its own.
    key_file = tmp_path / ".secret_key"
    the_other_process_key = kept_secret_key(key_file)
    monkeypatch.setattr(Path, "exists", lambda path: False if path == key_file else os.path.exists(path))
    assert kept_secret_key(key_file) == the_other_process_key
    assert key_file.read_text().strip() == the_other_process_key
    assert [path.name for path in tmp_path.iterdir()] == [".secret_key"]


def test_a_kept_key_is_read_not_replaced(tmp_path):
    key_file = tmp_path / ".secret_key"
    first = kept_secret_key(key_file)
    assert kept_secret_key(key_file) == first


def test_an_empty_key_file_is_refused_with_what_to_do(tmp_path):
    key_file = tmp_path / ".secret_key"
    key_file.write_text("")
    with pytest.raises(ImproperlyConfigured, match="is empty: delete it"):
        kept_secret_key(key_file)
