# Shared by the side-by-side benchmark scripts (sourced, not run): the one server under load,
# by PID, and what it cost. Starting one needs RAFTKV_BIN, CTL, PORT (the peer port is
# PORT+1), WORK and SHARED (../shared/etcd) from the caller.

PID=""

# Until a serializable read answers.
wait_ready() {
  for _ in $(seq 600); do
    "$CTL" --endpoints "127.0.0.1:$PORT" get --consistency s x >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  echo "server on $PORT never became ready" >&2; return 1
}

# A raftkv member on $WORK/raftkv (reopened if it exists), log appended to $WORK/raftkv.log.
start_raftkv() {
  "$RAFTKV_BIN" --name bench --data-dir "$WORK/raftkv" --listen-client-urls "http://127.0.0.1:$PORT" \
    --listen-peer-urls "http://127.0.0.1:$((PORT + 1))" --log-level warn >>"$WORK/raftkv.log" 2>&1 &
  PID=$!
  wait_ready
}

# A fresh etcd member on $WORK/etcd (../shared/etcd/etcd-start.sh).
start_etcd() {
  ETCD_FRESH=1 ETCD_PIDFILE="$WORK/etcd.pid" ETCD_LOGFILE="$WORK/etcd.log" \
    "$SHARED/etcd-start.sh" "$WORK/etcd" "$PORT" "$((PORT + 1))" >/dev/null
  PID=$(cat "$WORK/etcd.pid")
  wait_ready
}

# Stops the server: SIGTERM, then SIGKILL after 15 s.
stop_server() {
  if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
    kill -TERM "$PID"
    for _ in $(seq 150); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$PID" 2>/dev/null && kill -KILL "$PID"
  fi
  PID=""
}

# CPU seconds (user + system) the server has used so far.
cpu_secs() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.3f", ($14+$15)/hz}' "/proc/$PID/stat"; }
