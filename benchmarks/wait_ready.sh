# Sourced by the benchmark scripts that start `affinity serve` in the background.
#
#   wait_ready PID OUT ERR
#
# Waits (up to 5 minutes) until the server PID writes "ready" to its stdout file OUT. Returns 1,
# with the server's stderr file ERR on stderr, if it exits first or never gets there.
wait_ready() {
  local pid=$1 out=$2 err=$3
  for _ in $(seq 1 300); do
    grep -q ready "$out" 2>/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || { cat "$err" >&2; return 1; }
    sleep 1
  done
  echo "the server (pid $pid) did not start within 5 minutes" >&2
  return 1
}
