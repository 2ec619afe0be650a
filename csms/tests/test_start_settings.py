"""Settings that passed at start and failed later (every API request, every handshake, the hourly
prune) now stop the start with a message naming the variable."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from kombu import Connection

ROOT = Path(__file__).resolve().parents[2]
PRINT = (
    "import json, django; django.setup(); from django.conf import settings as s;"
    "print(json.dumps({'rate': s.REST_FRAMEWORK['DEFAULT_THROTTLE_RATES']['api_key'],"
    " 'level': s.LOGGING['root']['level'], 'hosts': s.ALLOWED_HOSTS, 'public': s.CSMS_PUBLIC_URL,"
    " 'broker': s.CELERY_BROKER_URL}))"
)


def start(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "DJANGO_SETTINGS_MODULE": "csms.settings", "CSMS_VAR_DIR": str(tmp_path)}
    for name in ("DATABASE_URL", "REDIS_URL", "CSMS_DB_POOL_MAX", "CSMS_DB_POOL_TIMEOUT"):  # make test sets them
        environment.pop(name, None)
    environment.update(env)
    return subprocess.run([sys.executable, "-c", PRINT], cwd=ROOT, env=environment, capture_output=True, text=True)


def started(tmp_path: Path, **env: str) -> dict:
    done = start(tmp_path, **env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def refusal(tmp_path: Path, **env: str) -> str:
    done = start(tmp_path, **env)
    assert done.returncode != 0
    return done.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize(
    "variable, value, message",
    [
        ("CSMS_DEFAULT_HEARTBEAT_INTERVAL", "99999999999999999999999", "must be at most 2147483647"),
        ("CSMS_MESSAGE_LOG_DAYS", "1000000", "must be at most 36500"),
        ("CSMS_HEARTBEAT_RETENTION_DAYS", "36501", "must be at most 36500"),
        ("CSMS_WEBHOOK_DELIVERY_DAYS", "36501", "must be at most 36500"),
        ("CSMS_WEBHOOK_DELIVERY_DAYS", "0", "must be at least 1"),
        ("CSMS_OCPP_CALL_TIMEOUT", "1_000", "is not an integer"),
        ("CSMS_WEBHOOK_MAX_ATTEMPTS", "60", "the last retry's wait"),
        ("CSMS_FIRMWARE_MAX_BYTES", "1000", "must be at least 1024"),
        ("CSMS_API_AUTH_FAILURES_PER_IP", "0", "must be at least 1"),
        ("CSMS_API_AUTH_FAILURE_WINDOW_SECONDS", "0", "must be at least 1"),
    ],
)
def test_an_integer_beyond_its_bound_stops_the_start_naming_the_variable(tmp_path, variable, value, message):
    refused = refusal(tmp_path, **{variable: value})
    assert variable in refused and message in refused


@pytest.mark.parametrize("value", ["abc", "10/fortnight", "0/minute", "10 / minute", "1_0/s"])
def test_an_api_rate_drf_cannot_read_stops_the_start(tmp_path, value):
    assert "CSMS_API_RATE" in refusal(tmp_path, CSMS_API_RATE=value)


def test_api_rates_are_read_as_drf_reads_them(tmp_path):
    assert started(tmp_path, CSMS_API_RATE="10/S")["rate"] == "10/s"
    assert started(tmp_path, CSMS_API_RATE="100/hours")["rate"] == "100/hours"
    assert started(tmp_path, CSMS_API_RATE="5/hr")["rate"] == "5/hr"  # the reviewer: DRF takes it
    assert started(tmp_path, CSMS_API_RATE="")["rate"] == "6000/minute"


@pytest.mark.parametrize(
    "variable, value",
    [
        ("REDIS_URL", "notaurl"),
        ("REDIS_URL", "http://127.0.0.1:6379"),
        ("REDIS_URL", "redis://[::1:6379"),
        ("DATABASE_URL", "foo://bar"),
        ("CELERY_BROKER_URL", "bogus://"),
    ],
)
def test_a_url_of_an_unknown_kind_stops_the_start_naming_the_variable(tmp_path, variable, value):
    assert variable in refusal(tmp_path, **{variable: value})


def test_a_refused_url_is_not_repeated_in_the_message_it_may_hold_a_password(tmp_path):
    message = refusal(tmp_path, REDIS_URL="http://:s3cret@127.0.0.1:6379")
    assert "REDIS_URL is not a URL starting with redis://, rediss://, unix://" in message
    assert "s3cret" not in message


@pytest.mark.parametrize(
    "variable, value, message",
    [
        ("REDIS_URL", "redis://127.0.0.1:abc/4", "REDIS_URL is not a URL (Port could not be cast"),
        ("REDIS_URL", "redis://127.0.0.1:99999/4", "REDIS_URL is not a URL (Port out of range"),
        ("REDIS_URL", "redis://:s3cret@127.0.0.1:6379/abc", "REDIS_URL's database, 'abc', is not a number"),
        ("REDIS_URL", "rediss://127.0.0.1:6379/4/", "REDIS_URL's database, '4/', is not a number"),
        ("CSMS_PUBLIC_URL", "http://csms.example.com:99999", "CSMS_PUBLIC_URL is not a URL (Port out of range"),
        ("CELERY_BROKER_URL", "amqp://guest@localhost:abc//", "CELERY_BROKER_URL is not a URL (Port could not"),
    ],
)
def test_a_url_whose_port_or_redis_database_its_client_cannot_read_stops_the_start(tmp_path, variable, value, message):
    """The gateway served on such a REDIS_URL (redis-py fails at the first charger's handshake, or reads
    '/abc' as database 0) and the Celery worker stopped at start on it; a charger fetches no firmware
    from a port out of range."""
    refused = refusal(tmp_path, **{variable: value})
    assert refused.startswith(message)
    assert "s3cret" not in refused


def test_redis_urls_with_a_database_number_or_none_start(tmp_path):
    for url in ("redis://127.0.0.1:6379/4", "redis://127.0.0.1:6379/", "rediss://:pw@127.0.0.1", "unix:///run/r.sock"):
        start_ = start(tmp_path, REDIS_URL=url)
        assert start_.returncode == 0, (url, start_.stderr)


def test_redis_and_broker_urls_of_the_known_kinds_start(tmp_path):
    broker = started(tmp_path, REDIS_URL="unix:///run/redis.sock")["broker"]
    assert broker == "redis+socket:///run/redis.sock"  # kombu has no unix:// transport (the reviewer)
    assert Connection(broker).transport_cls == "redis"  # its Redis transport, over the socket
    assert started(tmp_path, CELERY_BROKER_URL="amqp://guest@localhost//")["broker"] == "amqp://guest@localhost//"


def test_a_broker_url_listing_failover_brokers_starts(tmp_path):
    """kombu's failover list, Celery's way to a Redis Sentinel (``sentinel://h1:26379;sentinel://h2:26379``),
    stopped the start once every URL setting's port was checked: the whole list read as one URL."""
    for url in ("sentinel://h1:26379;sentinel://h2:26379", "amqp://guest@h1:5672//;amqp://guest@h2:5672//"):
        assert started(tmp_path, CELERY_BROKER_URL=url)["broker"] == url
        assert len(Connection(url).alt) == 2  # both brokers, as the worker reads them
    refused = refusal(tmp_path, CELERY_BROKER_URL="sentinel://h1:26379;sentinel://h2:abc")
    assert refused.startswith("CELERY_BROKER_URL is not a URL (Port could not be cast")


def test_the_log_level_is_read_in_any_case_and_empty_is_the_default(tmp_path):
    assert started(tmp_path, CSMS_LOG_LEVEL="debug")["level"] == "DEBUG"
    assert started(tmp_path, CSMS_LOG_LEVEL="warn")["level"] == "WARN"  # logging's own alias
    assert started(tmp_path, CSMS_LOG_LEVEL="")["level"] == "INFO"
    assert "CSMS_LOG_LEVEL='bogus' is not one of" in refusal(tmp_path, CSMS_LOG_LEVEL="bogus")


@pytest.mark.parametrize("value", ["csms.example.com", "ftp://csms.example.com", "http://"])
def test_a_public_url_that_is_not_an_absolute_http_url_stops_the_start(tmp_path, value):
    assert "CSMS_PUBLIC_URL" in refusal(tmp_path, CSMS_PUBLIC_URL=value)


def test_an_empty_public_url_is_the_default(tmp_path):
    assert started(tmp_path, CSMS_PUBLIC_URL="")["public"] == "http://localhost:8000"
    assert started(tmp_path, CSMS_PUBLIC_URL="https://csms.example.com/")["public"] == "https://csms.example.com"


@pytest.mark.parametrize("origin", ["csms.example.com", "https://", "csms.example.com:443"])
def test_a_csrf_trusted_origin_without_scheme_and_host_stops_every_start(tmp_path, origin):
    """Django's system check refused it in manage.py only: ``make serve`` and Celery started with it."""
    value = f"https://ok.example.com, {origin}"
    assert refusal(tmp_path, DJANGO_CSRF_TRUSTED_ORIGINS=value) == (
        f"DJANGO_CSRF_TRUSTED_ORIGINS: {origin!r} is not an origin: a scheme, :// and a host (https://csms.example.com)."
    )


def test_csrf_trusted_origins_with_their_scheme_start(tmp_path):
    started(tmp_path, DJANGO_CSRF_TRUSTED_ORIGINS="https://csms.example.com,https://*.example.org,http://10.0.0.5:8000")


@pytest.mark.parametrize("host", ["http://192.168.1.20:9000", "192.168.1.20:9000", "csms.example.com/", "[::1]:8000"])
def test_an_allowed_host_with_scheme_port_or_path_stops_the_start(tmp_path, host):
    """Django compares a request's host without its port: such an entry matched nothing, every request 400."""
    assert refusal(tmp_path, DJANGO_ALLOWED_HOSTS=f"localhost,{host}") == (
        f"DJANGO_ALLOWED_HOSTS: {host!r} is not a host name: give it without scheme, port or path"
        " (csms.example.com, 192.168.1.20, [::1])."
    )


@pytest.mark.parametrize("host", ["*.example.com", "csms.*", "*example.com"])
def test_an_allowed_host_with_a_wildcard_django_does_not_know_stops_the_start(tmp_path, host):
    """Django compares it as it is (its wildcards are ``*`` alone and a leading dot): it matched no
    request, and every API call and admin page behind that name was a 400."""
    assert refusal(tmp_path, DJANGO_ALLOWED_HOSTS=f"localhost,{host}") == (
        f"DJANGO_ALLOWED_HOSTS: {host!r} matches no host: Django's wildcards are * alone (any host)"
        " and a leading dot (.example.com: example.com and its subdomains)."
    )


def test_allowed_hosts_of_names_addresses_and_patterns_start(tmp_path):
    hosts = "localhost,127.0.0.1,[::1],[2001:db8::1],.example.com,*,csms.local"
    assert started(tmp_path, DJANGO_ALLOWED_HOSTS=hosts)["hosts"] == hosts.split(",")


def test_empty_allowed_hosts_are_the_default(tmp_path):
    assert started(tmp_path, DJANGO_ALLOWED_HOSTS="")["hosts"] == ["localhost", "127.0.0.1", "[::1]"]


@pytest.mark.parametrize("value", ["abc", "postgres:/db", "user:secret@db.example.com/csms"])
def test_a_database_url_without_a_scheme_says_so_without_repeating_it(tmp_path, value):
    """It said "Scheme '://' is unknown. Did you forget to register custom backend?" and listed 20 schemes."""
    assert refusal(tmp_path, DATABASE_URL=value) == (
        "DATABASE_URL is not a database URL: it does not start with a scheme and :// (postgres://user:password@host:5432/name)."
    )


@pytest.mark.parametrize("value", ["postgres://", "postgres://csms:s3cret@127.0.0.1:5432/", "postgresql://db:5432"])
def test_a_database_url_naming_no_database_stops_the_start_in_one_line(tmp_path, value):
    """Django asked for the name at the first connection: `migrate` and `make serve`'s workers ended in
    a traceback ("settings.DATABASES is improperly configured"), `manage.py check` passed."""
    message = refusal(tmp_path, DATABASE_URL=value)
    assert message.startswith("DATABASE_URL names no database: give its name after the host")
    assert "s3cret" not in message


def test_a_database_url_naming_its_database_by_a_service_starts(tmp_path):
    assert start(tmp_path, DATABASE_URL="postgres://?service=csms").returncode == 0


def test_a_pool_minimum_above_its_maximum_stops_the_start_naming_both(tmp_path):
    refused = refusal(
        tmp_path, DATABASE_URL="postgres://postgres@127.0.0.1:5432/x", CSMS_DB_POOL_MIN="30", CSMS_DB_POOL_MAX="20"
    )
    assert "CSMS_DB_POOL_MIN=30 is above CSMS_DB_POOL_MAX=20" in refused


@pytest.mark.skipif(importlib.util.find_spec("boto3") is not None, reason="boto3 is installed")
@pytest.mark.parametrize(
    "variable",
    [
        "CSMS_DB_POOL_MIN",
        "CSMS_DB_POOL_MAX",
        "CSMS_DB_POOL_TIMEOUT",
        "CSMS_DB_POOL_MAX_IDLE",
        "CSMS_DB_PREPARE_THRESHOLD",
        "CSMS_REDIS_MAX_CONNECTIONS",
        "CSMS_REDIS_POOL_TIMEOUT",
        "CSMS_CHANNEL_CAPACITY",
    ],
)
def test_a_bad_pool_or_redis_setting_stops_make_run_s_embedded_start_too(tmp_path, variable):
    """On SQLite without Redis (``make run``'s defaults) these were not read: ``CSMS_DB_POOL_MAX=abc`` started
    without a word, and stopped the first start with DATABASE_URL set, a deployment day later."""
    assert refusal(tmp_path, **{variable: "abc"}) == f"{variable}='abc' is not an integer."


def test_a_pool_minimum_above_its_maximum_stops_make_run_s_embedded_start_too(tmp_path):
    assert refusal(tmp_path, CSMS_DB_POOL_MIN="30", CSMS_DB_POOL_MAX="20") == (
        "CSMS_DB_POOL_MIN=30 is above CSMS_DB_POOL_MAX=20."
    )


def test_an_s3_bucket_without_boto3_stops_the_start(tmp_path):
    assert "CSMS_S3_BUCKET='firmware' needs boto3" in refusal(tmp_path, CSMS_S3_BUCKET="firmware")


@pytest.mark.parametrize(
    "env, message",
    [
        ({"CSMS_S3_BUCKET": "s3://firmware"}, "CSMS_S3_BUCKET='s3://firmware' is not a bucket name"),
        ({"CSMS_S3_BUCKET": "firmware/images"}, "CSMS_S3_BUCKET='firmware/images' is not a bucket name"),
        ({"CSMS_S3_BUCKET": "firmware", "CSMS_S3_ENDPOINT_URL": "minio:9000"}, "CSMS_S3_ENDPOINT_URL is not a URL"),
        ({"CSMS_S3_BUCKET": "firmware", "CSMS_S3_REGION": "eu west 1"}, "CSMS_S3_REGION='eu west 1' is not a region"),
        (
            {"CSMS_S3_BUCKET": "firmware", "CSMS_S3_ACCESS_KEY_ID": "AKIA1"},
            "CSMS_S3_ACCESS_KEY_ID and CSMS_S3_SECRET_ACCESS_KEY go together",
        ),
        (
            {"CSMS_S3_ENDPOINT_URL": "http://minio:9000", "CSMS_S3_REGION": "eu-west-1"},
            "CSMS_S3_ENDPOINT_URL, CSMS_S3_REGION set without CSMS_S3_BUCKET",
        ),
    ],
)
def test_s3_settings_boto3_would_refuse_at_the_first_upload_stop_the_start(tmp_path, env, message):
    """They passed the start and failed at a charger's firmware download or log upload; the others set
    without the bucket stored the files on the local disk unannounced."""
    assert message in refusal(tmp_path, **env)


def test_s3_settings_of_the_right_shape_pass_until_boto3_is_looked_for(tmp_path):
    env = {
        "CSMS_S3_BUCKET": " firmware.example-1 ",
        "CSMS_S3_ENDPOINT_URL": "https://minio.example.com:9000",
        "CSMS_S3_REGION": "eu-west-1",
        "CSMS_S3_ACCESS_KEY_ID": "AKIA1",
        "CSMS_S3_SECRET_ACCESS_KEY": "s3cret",
    }
    assert refusal(tmp_path, **env) == "CSMS_S3_BUCKET='firmware.example-1' needs boto3: pip install boto3."


@pytest.mark.parametrize("variable", ["CSMS_VAR_DIR", "CSMS_METRICS_DIR", "CSMS_FILES_DIR"])
def test_a_directory_that_cannot_be_created_stops_the_start_naming_the_variable(tmp_path, variable):
    (tmp_path / "a-file").write_text("")
    refused = refusal(tmp_path, **{variable: str(tmp_path / "a-file" / "sub")})
    assert f"{variable}=" in refused and "cannot create the directory" in refused


def test_empty_files_dir_is_the_default_not_the_working_directory(tmp_path):
    """CSMS_FILES_DIR set empty stored firmware images and diagnostics uploads in the process's working
    directory (the repository); empty is the default, ``var/files``, as for the other settings."""
    environment = {**os.environ, "DJANGO_SETTINGS_MODULE": "csms.settings", "CSMS_VAR_DIR": str(tmp_path)}
    environment.update(CSMS_FILES_DIR="")
    code = "import django; django.setup(); from django.core.files.storage import default_storage as storage;"
    code += "print(storage.location)"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=environment, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(tmp_path / "files")


def test_a_diagnostics_size_beyond_32_bits_starts(tmp_path):
    """The reviewer: every integer setting was held to 2^31-1, a 4 GiB upload limit too."""
    done = start(tmp_path, CSMS_DIAGNOSTICS_MAX_BYTES=str(4 * 1024**3))
    assert done.returncode == 0, done.stderr
