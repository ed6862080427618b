# Shared by the side-by-side benchmark scripts (sourced, not run): the servers under load,
# by PID, and what they cost. Starting one needs RAFTKV_BIN, CTL, PORT (the peer port is
# PORT+1), WORK and SHARED (../shared/etcd) from the caller; a start sets PIDS and ENDPOINTS
# (comma-separated, what `raftkvctl --endpoints` takes).

PIDS=()
ENDPOINTS=""
# Client ports of the 3-member clusters: raftkv's beside PORT, etcd's where its script puts them.
RAFTKV_CLUSTER_PORTS=("$PORT" "$((PORT + 10))" "$((PORT + 20))")
ETCD_CLUSTER_PORTS=(2379 22379 32379)

# Until a serializable read answers on every port given.
wait_ready() {
  local port
  for port in "$@"; do
    for _ in $(seq 600); do
      "$CTL" --endpoints "127.0.0.1:$port" get --consistency s x >/dev/null 2>&1 && continue 2
      sleep 0.05
    done
    echo "server on $port never became ready" >&2; return 1
  done
}

# A raftkv member on $WORK/raftkv (reopened if it exists), log appended to $WORK/raftkv.log.
start_raftkv() {
  "$RAFTKV_BIN" --name bench --data-dir "$WORK/raftkv" --listen-client-urls "http://127.0.0.1:$PORT" \
    --listen-peer-urls "http://127.0.0.1:$((PORT + 1))" --log-level warn >>"$WORK/raftkv.log" 2>&1 &
  PIDS=($!)
  ENDPOINTS="127.0.0.1:$PORT"
  wait_ready "$PORT"
}

# A fresh etcd member on $WORK/etcd (../shared/etcd/etcd-start.sh).
start_etcd() {
  ETCD_FRESH=1 ETCD_PIDFILE="$WORK/etcd.pid" ETCD_LOGFILE="$WORK/etcd.log" \
    "$SHARED/etcd-start.sh" "$WORK/etcd" "$PORT" "$((PORT + 1))" >/dev/null
  PIDS=("$(cat "$WORK/etcd.pid")")
  ENDPOINTS="127.0.0.1:$PORT"
  wait_ready "$PORT"
}

# A fresh 3-member raftkv cluster under $WORK/raftkv-cluster, clients on RAFTKV_CLUSTER_PORTS.
start_raftkv_cluster() {
  local initial="" i port
  for i in 0 1 2; do
    port=${RAFTKV_CLUSTER_PORTS[$i]}
    initial+="${initial:+,}m$i=http://127.0.0.1:$((port + 1))"
  done
  PIDS=()
  for i in 0 1 2; do
    port=${RAFTKV_CLUSTER_PORTS[$i]}
    "$RAFTKV_BIN" --name "m$i" --data-dir "$WORK/raftkv-cluster/m$i" \
      --listen-client-urls "http://127.0.0.1:$port" --advertise-client-urls "http://127.0.0.1:$port" \
      --listen-peer-urls "http://127.0.0.1:$((port + 1))" --initial-advertise-peer-urls "http://127.0.0.1:$((port + 1))" \
      --initial-cluster "$initial" --log-level warn >>"$WORK/raftkv-cluster.log" 2>&1 &
    PIDS+=($!)
  done
  ENDPOINTS=$(printf '127.0.0.1:%s,' "${RAFTKV_CLUSTER_PORTS[@]}"); ENDPOINTS=${ENDPOINTS%,}
  wait_ready "${RAFTKV_CLUSTER_PORTS[@]}"
}

# A fresh 3-member etcd cluster (../shared/etcd/etcd-cluster-start.sh) under $WORK/etcd-cluster.
start_etcd_cluster() {
  ETCD_FRESH=1 "$SHARED/etcd-cluster-start.sh" "$WORK/etcd-cluster" >/dev/null
  PIDS=()
  local n
  for n in m1 m2 m3; do PIDS+=("$(cat "$WORK/etcd-cluster/$n.pid")"); done
  ENDPOINTS=$(printf '127.0.0.1:%s,' "${ETCD_CLUSTER_PORTS[@]}"); ENDPOINTS=${ENDPOINTS%,}
  wait_ready "${ETCD_CLUSTER_PORTS[@]}"
}

# Stops the servers: SIGTERM, then SIGKILL after 15 s.
stop_server() {
  local pid
  # `|| true`: the callers run under `set -e`, and a member that already died (one that could
  # not bind its port, say) must not end the stop before its siblings are stopped.
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" || true; fi
  done
  PIDS=()
}

# CPU seconds (user + system) the servers have used so far, all members together.
cpu_secs() {
  local pid
  for pid in "${PIDS[@]}"; do cat "/proc/$pid/stat"; done |
    awk -v hz="$(getconf CLK_TCK)" '{t += $14 + $15} END {printf "%.3f", t/hz}'
}

# The largest peak RSS among the servers, in MiB.
peak_rss_mib() {
  local pid
  for pid in "${PIDS[@]}"; do cat "/proc/$pid/status"; done |
    awk '/VmHWM/ {if ($2 > m) m = $2} END {printf "%.0f", m/1024}'
}
