# Shared by the side-by-side benchmark scripts (sourced, not run): the one server under load,
# by PID, and what it cost.

PID=""

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
