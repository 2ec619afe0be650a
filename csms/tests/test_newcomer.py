"""The newcomer test (issue 19's acceptance): the product started the way the README says, from a
clean clone, and the README's examples followed in order; every one succeeds.

- **The clone**: ``git clone`` of this repository, checked out at its ``HEAD`` (what is committed is
  what a newcomer gets). Its ``.venv`` is a symlink to this one, as in the helpers' worktrees, and
  ``make run`` is told the install is done (``-o install``): installing takes minutes and is the lean
  install's own test (``test_install.py``); ``make run`` still migrates and starts everything.
- **The product**: ``make run`` in the clone with none of this test run's settings (no
  ``DATABASE_URL``, ``REDIS_URL``, ``CSMS_*``): the README's quick start, SQLite in the clone's
  ``var/``, the in-memory channel layer and the filesystem Celery broker. On a free loopback port
  (``PORT``, which the README documents); the README's ``127.0.0.1:8000`` is read as that port,
  and ``simulate_charger`` is given the same address with ``--url``.
- **The examples**: the ``sh`` blocks marked ``<!-- newcomer: run -->``, in README order, run as one
  bash script in the clone (the variables one block sets, such as ``KEY`` and ``API``, are there for
  the next, as in a user's terminal). Every block is marked run or skip with a reason. ``curl`` is
  the real curl, wrapped to record each answer: the script stops at the first that is not a 2xx,
  and each JSON answer must parse. Background chargers are stopped with Ctrl-C's SIGINT at the end
  and must exit 0 (they never lost the CSMS).
- **The stop**: SIGINT to ``make run``'s process group, as Ctrl-C in its terminal.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import ROOT, free_port, http_request
from csms.tests.conftest import as_from_a_terminal, processes_started_with

MARKER = re.compile(r"<!-- newcomer: (run|skip: .+) -->")
CURL_WRAPPER = r"""
curl() {
  local body meta
  body=$(mktemp -p "$NEWCOMER_DIR" answer.XXXXXX)
  meta=$(command curl "$@" --output "$body" --write-out '%{http_code}\t%{content_type}')
  local args="$*"
  printf '%s\t%s\t%s\n' "$meta" "$body" "${args//$'\n'/ }" >> "$NEWCOMER_DIR/answers.tsv"
  cat "$body"
  [[ $meta == 2* ]] || { echo "not a 2xx: curl $args" >&2; return 1; }
}
"""
STOP_BACKGROUND = r"""
status=0
for pid in $(jobs -p); do kill -INT -- "-$pid"; done
for pid in $(jobs -p); do wait "$pid" || { echo "background job $pid exited $?" >&2; status=1; }; done
exit $status
"""


def readme_sh_blocks(text: str) -> list[tuple[str, str]]:
    """Every ``sh`` block of the README as (its marker, its text), in order."""
    lines = text.splitlines()
    blocks = []
    for number, line in enumerate(lines):
        if line != "```sh":
            continue
        marker = MARKER.fullmatch(lines[number - 1])
        end = lines.index("```", number + 1)
        blocks.append((marker.group(1) if marker else "", "\n".join(lines[number + 1 : end])))
    return blocks


def newcomer_script(readme: str, port: int) -> str:
    """The blocks marked run, on ``port``: bash, stopping at the first failure."""
    examples = "\n\n".join(text for marker, text in readme_sh_blocks(readme) if marker == "run")
    examples = examples.replace("127.0.0.1:8000", f"127.0.0.1:{port}")
    examples = re.sub(r"(manage\.py simulate_charger \S+)", rf"\1 --url ws://127.0.0.1:{port}", examples)
    return f"set -euo pipefail\nset -m\n{CURL_WRAPPER}\n{examples}\n{STOP_BACKGROUND}"


def clean_clone(destination: Path) -> Path:
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, check=True, capture_output=True, text=True)
    subprocess.run(["git", "clone", "--quiet", "--no-checkout", str(ROOT), str(destination)], check=True)
    subprocess.run(["git", "checkout", "--quiet", head.stdout.strip()], cwd=destination, check=True)
    (destination / ".venv").symlink_to((ROOT / ".venv").resolve())
    return destination


def newcomer_environment(clone: Path, answers: Path) -> dict[str, str]:
    """A user's shell: none of this run's settings. ``CSMS_VAR_DIR`` is the default (the clone's
    ``var/``), set only to find every process started here."""
    environment = {
        name: value for name, value in os.environ.items()
        if not name.startswith(("CSMS_", "DJANGO_", "DATABASE_URL", "REDIS_URL", "PROMETHEUS_", "PYTEST_"))
    }
    return {**environment, "CSMS_VAR_DIR": str(clone / "var"), "NEWCOMER_DIR": str(answers)}


def wait_until_ready(port: int, make: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert make.poll() is None, log.read_text()
        with contextlib.suppress(OSError):
            if http_request(f"http://127.0.0.1:{port}/readyz")[0] == 200:
                return
        time.sleep(0.5)
    pytest.fail(f"/readyz did not answer 200 within 120 s:\n{log.read_text()}")


def test_every_sh_block_of_the_readme_is_marked_run_or_skip_with_a_reason():
    blocks = readme_sh_blocks((ROOT / "README.md").read_text())
    unmarked = [text.splitlines()[0] for marker, text in blocks if not marker]
    assert unmarked == []
    assert sum(marker == "run" for marker, _ in blocks) >= 8


def test_the_script_runs_the_marked_blocks_in_order_on_the_port():
    readme = "\n".join([
        "<!-- newcomer: run -->", "```sh", "curl -s http://127.0.0.1:8000/a", "```",
        "<!-- newcomer: skip: elsewhere -->", "```sh", "curl -s http://127.0.0.1:8000/skipped", "```",
        "<!-- newcomer: run -->", "```sh", ".venv/bin/python manage.py simulate_charger CP-1 --register", "```",
    ])
    script = newcomer_script(readme, 4321)
    assert "curl -s http://127.0.0.1:4321/a\n\n.venv/bin/python manage.py simulate_charger CP-1 --url " \
           "ws://127.0.0.1:4321 --register" in script
    assert "skipped" not in script


@pytest.mark.timeout(600)
def test_a_newcomer_follows_the_readme_from_a_clean_clone(tmp_path):
    clone = clean_clone(tmp_path / "dynamo-csms")
    answers = tmp_path / "answers"
    answers.mkdir()
    environment = newcomer_environment(clone, answers)
    port = free_port()
    log = tmp_path / "make-run.log"
    with log.open("wb") as output:
        make = subprocess.Popen(["make", "-o", "install", "run", f"PORT={port}"], cwd=clone, env=environment,
                                stdout=output, stderr=subprocess.STDOUT, preexec_fn=as_from_a_terminal)
    try:
        wait_until_ready(port, make, log)
        script = newcomer_script((clone / "README.md").read_text(), port)
        newcomer = subprocess.run(["bash", "-c", script], cwd=clone, env=environment, capture_output=True,
                                  text=True, timeout=420)
        os.killpg(make.pid, signal.SIGINT)
        make.wait(timeout=60)
    finally:
        left = processes_started_with(clone / "var")
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    recorded = [line.split("\t") for line in (answers / "answers.tsv").read_text().splitlines()]
    report = "\n".join(f"{status} {arguments}" for status, _, _, arguments in recorded)
    assert newcomer.returncode == 0, f"{newcomer.stderr[-4000:]}\n{report}\n{log.read_text()[-4000:]}"
    examples = [text for marker, text in readme_sh_blocks((clone / "README.md").read_text()) if marker == "run"]
    assert len(recorded) >= sum(len(re.findall(r"\bcurl ", text)) for text in examples), report
    for status, content_type, body, arguments in recorded:
        assert status.startswith("2"), (status, arguments)
        if content_type.startswith("application/json"):
            json.loads(Path(body).read_text())
    assert any("/metrics" in arguments for *_, arguments in recorded)
    output = log.read_text()
    assert make.returncode in (0, -signal.SIGINT), output[-4000:]
    for trouble in ("Traceback", "CRITICAL", "ERROR", "make: ***"):
        assert trouble not in output, output
    assert left == []
