#!/usr/bin/env bash
# Starts the whole system in the foreground: the gateway (scripts/serve.py: daphne for WebSocket,
# API and admin), a Celery worker with beat, and the webhook delivery worker. Ctrl-C stops them all.
set -euo pipefail
HOST=${HOST:-127.0.0.1}
PORT=${PORT:-8000}
BIN=${BIN:-.venv/bin}
VAR_DIR=${CSMS_VAR_DIR:-var}
# Where chargers fetch firmware and upload diagnostics: this server, unless set (behind a proxy, set it).
# On every interface (HOST=0.0.0.0) that is no address a charger can reach: this machine's address on
# its default route instead (a UDP socket's connect sends nothing), else its host name, with a note.
public_note=""
# The banner's links: on every interface (HOST=0.0.0.0) http://0.0.0.0:PORT is no address a browser or
# curl may use (nor a host name DJANGO_ALLOWED_HOSTS holds: 400), this machine's loopback is.
local_host=$HOST
[ "$HOST" = 0.0.0.0 ] && local_host=127.0.0.1
charger_host=$local_host
if [ -z "${CSMS_PUBLIC_URL:-}" ]; then
  public_host=$HOST
  if [ "$HOST" = 0.0.0.0 ]; then
    public_host=$("$BIN/python" -c 'import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.connect(("192.0.2.1", 9))
print(s.getsockname()[0])' 2>/dev/null || uname -n)
    charger_host=$public_host
    public_note="
    Note         HOST=0.0.0.0: chargers are sent this machine's address above; set CSMS_PUBLIC_URL if they reach it at another"
  fi
  export CSMS_PUBLIC_URL=http://$public_host:$PORT
fi
# Its processes add up their metrics in a directory of their own: two `make run`s on other ports do not mix.
export CSMS_METRICS_DIR=${CSMS_METRICS_DIR:-$VAR_DIR/metrics-$PORT}

# The banner shows where the database and Redis are, not their passwords (a terminal, a CI log).
without_password() { printf '%s' "$1" | sed -E 's#^([a-zA-Z0-9+.-]+://[^:/@]*):[^@/]*@#\1:***@#'; }

cat <<INFO

  Dynamo CSMS on http://$local_host:$PORT$(if [ "$HOST" = 0.0.0.0 ]; then echo "   (HOST=0.0.0.0: every interface)"; fi)
    Admin        http://$local_host:$PORT/admin/   (create a login: $BIN/python manage.py createsuperuser)
    API docs     http://$local_host:$PORT/api/v1/docs/
    API key      $BIN/python manage.py create_api_key my-integration   (the key is the last line)
    Chargers     ws://$charger_host:$PORT/ocpp/1.6/{charge_point_id}
                 ws://$charger_host:$PORT/ocpp/2.0.1/{charge_point_id}
    Files        $CSMS_PUBLIC_URL   (chargers' firmware downloads and diagnostics uploads)$public_note
    Database     $(if [ -n "${DATABASE_URL:-}" ]; then without_password "$DATABASE_URL"; else echo "SQLite in $VAR_DIR/db.sqlite3"; fi)
    Redis        $(if [ -n "${REDIS_URL:-}" ]; then without_password "$REDIS_URL"; else echo "none (in-memory channel layer, filesystem Celery broker)"; fi)

INFO

# Each child in its own process group: Ctrl-C reaches this script only, and a child is stopped with
# everything it started (Celery's pool and beat processes).
pids=()
# Threads, not forked pool processes: a pool child stopped while it is still starting printed a
# traceback on an early Ctrl-C (billiard's signal handler exiting inside a destructor).
setsid "$BIN/celery" -A csms worker --beat -Q celery --loglevel INFO --pool threads --concurrency 2 &
pids+=($!)
setsid "$BIN/celery" -A csms worker -Q webhooks --pool solo -n webhooks@%h --loglevel INFO &
pids+=($!)
# The gateway as `make serve` runs it; one worker unless WORKERS says more (they need REDIS_URL, DATABASE_URL).
HOST="$HOST" PORT="$PORT" WORKERS="${WORKERS:-1}" setsid "$BIN/python" scripts/serve.py &
pids+=($!)

# SIGTERM first (the gateway's daphne workers flush their write-behind buffers and exit at once;
# Celery starts a warm shutdown), then whatever is left after 1.5 s is killed (a webhook delivery
# still in flight is sent again when its claim's lease passes), and so is what a child left behind
# in its process group when it exited (Celery's beat process, started by a worker stopped while it
# was starting). Runs once, and signals only the children: never make's process group.
stop() {
  local status=${1:-0}
  trap '' INT TERM HUP
  trap - EXIT
  kill -TERM "${pids[@]}" 2>/dev/null || true
  for _ in $(seq 15); do
    kill -0 "${pids[@]}" 2>/dev/null || break  # succeeds while any of them is alive
    sleep 0.1
  done
  for pid in "${pids[@]}"; do
    kill -KILL -- "-$pid" 2>/dev/null || true
  done
  exit "$status"
}
trap stop INT TERM HUP EXIT
status=0
wait -n || status=$?
stop "$status"
