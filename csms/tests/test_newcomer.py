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
  and each JSON answer must parse. Background jobs are stopped with Ctrl-C's SIGINT at the end and
  must exit 0 or die of the SIGINT (130): a simulator that lost the CSMS exits 1.
- **The stop**: SIGINT to ``make run``'s process group, as Ctrl-C in its terminal.
- **Webhooks on one machine** (the block marked ``webhooks``) need ``make run`` started again with
  the settings that block names; a second test starts it that way, takes ``KEY`` and ``API`` as
  *Try it* makes them, runs the block (its receiver on a free port) and checks the signed deliveries.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import ROOT, free_port, http_request
from csms.tests.conftest import as_from_a_terminal, processes_started_with

MARKER = re.compile(r"<!-- newcomer: (run|webhooks|skip: .+) -->")
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
DELIVERED = r"""
for _ in $(seq 120); do grep '"type":"transaction.ended"' "$NEWCOMER_DIR/stdout" >/dev/null && break; sleep 1; done
"""
STOP_BACKGROUND = r"""
status=0
for pid in $(jobs -p); do kill -INT -- "-$pid"; done
for pid in $(jobs -p); do
  wait "$pid" || { code=$?; [[ $code == 130 ]] || { echo "background job $pid exited $code" >&2; status=1; }; }
done
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


def on_port(commands: str, port: int) -> str:
    """The README's commands for a server on ``port`` instead of 8000 (``${PORT:-8000}`` included)."""
    commands = commands.replace("127.0.0.1:8000", f"127.0.0.1:{port}").replace("${PORT:-8000}", str(port))
    return re.sub(r"(manage\.py simulate_charger \S+)", rf"\1 --url ws://127.0.0.1:{port}", commands)


def bash_script(commands: str, ending: str = "") -> str:
    """``commands`` with curl recorded, stopping at the first failure; then ``ending``, then Ctrl-C
    to the background jobs, each of which must exit 0 or of the SIGINT."""
    return f"set -euo pipefail\nset -m\n{CURL_WRAPPER}\n{commands}\n{ending}{STOP_BACKGROUND}"


def newcomer_script(readme: str, port: int) -> str:
    """The blocks marked run, on ``port``."""
    examples = "\n\n".join(text for marker, text in readme_sh_blocks(readme) if marker == "run")
    return bash_script(on_port(examples, port))


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
        name: value
        for name, value in os.environ.items()
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


@contextlib.contextmanager
def make_run(clone: Path, environment: dict[str, str], port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``make run`` on ``port`` from a terminal of its own, ready; stopped with Ctrl-C at the end (its
    leftovers, if any, killed: the caller asserts there are none)."""
    with log.open("wb") as output:
        make = subprocess.Popen(
            ["make", "-o", "install", "run", f"PORT={port}"],
            cwd=clone,
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
            preexec_fn=as_from_a_terminal,
        )
    try:
        wait_until_ready(port, make, log)
        yield make
        os.killpg(make.pid, signal.SIGINT)
        make.wait(timeout=60)
    finally:
        for pid in processes_started_with(clone / "var"):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def stopped_cleanly(make: subprocess.Popen[bytes], clone: Path, log: Path) -> None:
    output = log.read_text()
    assert make.returncode in (0, -signal.SIGINT), output[-4000:]
    for trouble in ("Traceback", "CRITICAL", "ERROR", "make: ***"):
        assert trouble not in output, output
    assert processes_started_with(clone / "var") == []


def answers_recorded(answers: Path) -> list[list[str]]:
    """Each curl's (status, content type, body file, arguments); every one a 2xx, JSON that parses."""
    recorded = [line.split("\t") for line in (answers / "answers.tsv").read_text().splitlines()]
    for status, content_type, body, arguments in recorded:
        assert status.startswith("2"), (status, arguments)
        if content_type.startswith("application/json"):
            json.loads(Path(body).read_text())
    return recorded


def test_every_sh_block_of_the_readme_is_marked_run_or_skip_with_a_reason():
    blocks = readme_sh_blocks((ROOT / "README.md").read_text())
    unmarked = [text.splitlines()[0] for marker, text in blocks if not marker]
    assert unmarked == []
    assert sum(marker == "run" for marker, _ in blocks) >= 8


def test_the_script_runs_the_marked_blocks_in_order_on_the_port():
    readme = "\n".join(
        [
            "<!-- newcomer: run -->",
            "```sh",
            "curl -s http://127.0.0.1:8000/a",
            "API=http://127.0.0.1:${PORT:-8000}/api/v1",
            "```",
            "<!-- newcomer: skip: elsewhere -->",
            "```sh",
            "curl -s http://127.0.0.1:8000/skipped",
            "```",
            "<!-- newcomer: run -->",
            "```sh",
            ".venv/bin/python manage.py simulate_charger CP-1 --register",
            "```",
        ]
    )
    script = newcomer_script(readme, 4321)
    assert (
        "curl -s http://127.0.0.1:4321/a\nAPI=http://127.0.0.1:4321/api/v1\n\n"
        ".venv/bin/python manage.py simulate_charger CP-1 --url "
        "ws://127.0.0.1:4321 --register" in script
    )
    assert "skipped" not in script


@pytest.mark.timeout(600)
def test_a_newcomer_follows_the_readme_from_a_clean_clone(tmp_path):
    clone = clean_clone(tmp_path / "dynamo-csms")
    answers = tmp_path / "answers"
    answers.mkdir()
    environment = newcomer_environment(clone, answers)
    port, log = free_port(), tmp_path / "make-run.log"
    with make_run(clone, environment, port, log) as make:
        script = newcomer_script((clone / "README.md").read_text(), port)
        newcomer = subprocess.run(
            ["bash", "-c", script], cwd=clone, env=environment, capture_output=True, text=True, timeout=420
        )

    recorded = [line.split("\t") for line in (answers / "answers.tsv").read_text().splitlines()]
    report = "\n".join(f"{status} {arguments}" for status, _, _, arguments in recorded)
    assert newcomer.returncode == 0, f"{newcomer.stderr[-4000:]}\n{report}\n{log.read_text()[-4000:]}"
    answers_recorded(answers)
    examples = [text for marker, text in readme_sh_blocks((clone / "README.md").read_text()) if marker == "run"]
    assert len(recorded) >= sum(len(re.findall(r"\bcurl ", text)) for text in examples), report
    assert any("/metrics" in arguments for *_, arguments in recorded)
    stopped_cleanly(make, clone, log)


def webhooks_script(readme: str, port: int, receiver_port: int) -> tuple[dict[str, str], str]:
    """The settings the webhooks block starts ``make run`` with, and the rest of it as a script
    (after *Try it*'s ``PORT``, ``KEY`` and ``API``), its receiver on ``receiver_port``."""
    blocks = readme_sh_blocks(readme)
    [block] = [text for marker, text in blocks if marker == "webhooks"]
    [start] = [line for line in block.splitlines() if re.match(r"(\w+=\S+ )*make run\b", line)]
    settings = dict(re.findall(r"(\w+)=(\S+) ", start.split("make run")[0] + " "))
    try_it = next(text for marker, text in blocks if marker == "run").splitlines()
    credentials = [line for line in try_it if line.startswith(("export PORT=", "KEY=", "API="))]
    commands = "\n".join([*credentials, *(line for line in block.splitlines() if line != start)])
    commands = commands.replace("127.0.0.1:9001", f"127.0.0.1:{receiver_port}").replace(
        '"127.0.0.1", 9001', f'"127.0.0.1", {receiver_port}'
    )
    return settings, bash_script(on_port(commands, port), DELIVERED)


@pytest.mark.timeout(600)
def test_a_newcomer_tries_webhooks_on_one_machine_as_the_readme_says(tmp_path):
    clone = clean_clone(tmp_path / "dynamo-csms")
    answers = tmp_path / "answers"
    answers.mkdir()
    port, receiver_port, log = free_port(), free_port(), tmp_path / "make-run.log"
    settings, script = webhooks_script((clone / "README.md").read_text(), port, receiver_port)
    assert settings == {"CSMS_WEBHOOK_ALLOW_PRIVATE": "1"}
    environment = {**newcomer_environment(clone, answers), **settings}
    stdout = answers / "stdout"
    with make_run(clone, environment, port, log) as make, stdout.open("w") as output:
        newcomer = subprocess.run(
            ["bash", "-c", script],
            cwd=clone,
            env=environment,
            stdout=output,
            stderr=subprocess.PIPE,
            text=True,
            timeout=420,
        )
    assert newcomer.returncode == 0, f"{newcomer.stderr[-4000:]}\n{log.read_text()[-4000:]}"
    [subscription] = [
        json.loads(Path(body).read_text())
        for status, _, body, arguments in answers_recorded(answers)
        if "/webhooks/" in arguments
    ]
    deliveries = [line.split(" ", 1) for line in stdout.read_text().splitlines() if line.startswith("t=")]
    assert {json.loads(body)["type"] for _, body in deliveries} >= {"charge_point.online", "transaction.ended"}
    for signature, body in deliveries:
        timestamp, digest = re.fullmatch(r"t=(\d+),v1=(\w+)", signature).groups()
        expected = hmac.new(subscription["secret"].encode(), f"{timestamp}.{body}".encode(), hashlib.sha256)
        assert hmac.compare_digest(digest, expected.hexdigest())
    stopped_cleanly(make, clone, log)
