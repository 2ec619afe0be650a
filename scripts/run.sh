#!/usr/bin/env bash
# Starts the whole system in the foreground: the gateway (scripts/serve.py: daphne for WebSocket,
# API and admin) and a Celery worker with beat. Ctrl-C stops both.
set -euo pipefail
HOST=${HOST:-127.0.0.1}
PORT=${PORT:-8000}
BIN=${BIN:-.venv/bin}

cat <<INFO

  Dynamo CSMS on http://$HOST:$PORT
    Admin        http://$HOST:$PORT/admin/   (create a login: $BIN/python manage.py createsuperuser)
    API docs     http://$HOST:$PORT/api/v1/docs/
    API key      $BIN/python manage.py create_api_key my-integration   (the key is the last line)
    Chargers     ws://$HOST:$PORT/ocpp/1.6/{charge_point_id}
                 ws://$HOST:$PORT/ocpp/2.0.1/{charge_point_id}
    Database     ${DATABASE_URL:-SQLite in var/db.sqlite3}
    Redis        ${REDIS_URL:-none (in-memory channel layer, filesystem Celery broker)}

INFO

trap 'kill 0' EXIT INT TERM
"$BIN/celery" -A csms worker --beat --loglevel INFO --concurrency 2 &
# The gateway as `make serve` runs it; one worker unless WORKERS says more (they need REDIS_URL, DATABASE_URL).
HOST="$HOST" PORT="$PORT" WORKERS="${WORKERS:-1}" "$BIN/python" scripts/serve.py &
wait -n
