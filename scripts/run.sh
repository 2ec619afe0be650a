#!/usr/bin/env bash
# Starts the whole system in the foreground: daphne (WebSocket + API + admin), a Celery
# worker with beat, and the webhook delivery worker. Ctrl-C stops them all.
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
"$BIN/celery" -A csms worker --beat -Q celery --loglevel INFO --concurrency 2 &
"$BIN/celery" -A csms worker -Q webhooks --pool solo -n webhooks@%h --loglevel INFO &
"$BIN/daphne" -b "$HOST" -p "$PORT" csms.asgi:application &
wait -n
