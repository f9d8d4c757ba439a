# bench/lib.sh - what the bench scripts share; sourced, not run. The sourcing script sets
# BENCH (its name, for messages) first and may set THREADS, CONNS, PIPELINE, DELAY (wrk
# settings, default 1, 50, 1, 0) before calling wrk_run or measure.
#
# Every server process a script starts goes into PIDS and is stopped by PID on exit (TERM,
# then KILL after 5 s), also on Ctrl-C, SIGTERM or failure. wrk and other tools run under
# bounded(): timeout(1) in its own process group, stopped as a whole by the exit trap.
# Every wait is bounded. See bench/METHOD.md for the method.

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
THREADS=${THREADS:-1} CONNS=${CONNS:-50} PIPELINE=${PIPELINE:-1} DELAY=${DELAY:-0}
die() { echo "$BENCH: $*" >&2; exit 1; }
usage() { echo "$BENCH: $*" >&2; exit 2; } # a bad option
posint() { [[ $2 =~ ^[1-9][0-9]*$ ]] || usage "$1 wants a positive integer, not '$2'"; }

T=$(mktemp -d /tmp/weft-bench.XXXXXX)
PIDS=() # every server process started here, stopped by cleanup
stop() { # pid... : TERM, up to 5 s each, then KILL; reaps them
  local p
  for p in "$@"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "$@"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true # returns at once: the process is gone
  done
}
CHILD= # the timeout(1) running wrk or bench/ir-per-request now: leader of its own process group
bounded() { # seconds command... : runs it under timeout(1) in the background and waits, so
  # Ctrl-C reaches the trap at once; cleanup then stops the whole group.
  timeout -k 5 "$1" "${@:2}" &
  CHILD=$!
  local rc=0
  wait "$CHILD" || rc=$?
  CHILD=
  return $rc
}
cleanup() {
  trap - EXIT INT TERM
  if [ -n "$CHILD" ]; then
    kill -TERM -- "-$CHILD" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$CHILD" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$CHILD" 2>/dev/null || true
  fi
  [ ${#PIDS[@]} -eq 0 ] || stop "${PIDS[@]}"
  PIDS=()
  rm -rf "$T"
}
trap cleanup EXIT
exec 3>&2 # the trap may run inside a function whose stderr goes to a file
trap 'echo "$BENCH: interrupted" >&3; exit 130' INT
trap 'exit 143' TERM

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_up() { # name port pid logs...: up to 10 s for GET /hello to answer 200
  for _ in $(seq 100); do
    curl -sf -o /dev/null -m 1 "http://127.0.0.1:$2/hello" && return 0
    kill -0 "$3" 2>/dev/null || { echo "$BENCH: $1 exited at start:" >&2; tail -n5 "${@:4}" >&2 2>/dev/null; exit 1; }
    sleep 0.1
  done
  echo "$BENCH: $1 did not answer on port $2 within 10 s:" >&2; tail -n5 "${@:4}" >&2 2>/dev/null; exit 1
}
cpu_ticks() { # pids... -> utime+stime of each (whole thread group) in clock ticks, summed
  local t=0 p f
  for p in "$@"; do
    # fields 14 and 15; the command name (field 2) is in parentheses and may hold spaces
    f=$(sed -e 's/^.*) //' "/proc/$p/stat" 2>/dev/null | cut -d' ' -f12,13) || die "process $p is gone"
    t=$((t + ${f% *} + ${f#* }))
  done
  echo $t
}

# nginx_start name port location-blocks [http-blocks]: one NGINX process (generated config
# in $T; one worker, master_process off so that the PID started is the PID that serves and
# whose CPU counts, access log off unless NGINX_ACCESS_LOG names a file, keepalive_requests
# 1000000, worker_connections NGINX_WORKER_CONNECTIONS or 4096), listening on
# 127.0.0.1:port. http-blocks (e.g. an upstream block) go in the http block, before the
# server. Sets NGINX_PID and NGINX_CONF. nginx_conf, with the same arguments, only writes
# the config (sets NGINX_CONF): for a script that runs NGINX itself (bench/ir-per-request).
nginx_conf() {
  local name=$1 port=$2
  NGINX_CONF=$T/nginx-$name.conf
  cat >"$NGINX_CONF" <<NGX
worker_processes 1;
daemon off;
master_process off;
pid $T/nginx-$name.pid;
error_log $T/nginx-$name-error.log warn;
events { worker_connections ${NGINX_WORKER_CONNECTIONS:-4096}; }
http {
  access_log ${NGINX_ACCESS_LOG:-off};
  keepalive_requests 1000000;
  client_body_temp_path $T/nginx-$name-body;
  proxy_temp_path $T/nginx-$name-proxy;
  fastcgi_temp_path $T/nginx-$name-fastcgi;
  uwsgi_temp_path $T/nginx-$name-uwsgi;
  scgi_temp_path $T/nginx-$name-scgi;
  ${4-}
  server {
    listen 127.0.0.1:$port;
    $3
  }
}
NGX
}
nginx_start() {
  local name=$1
  nginx_conf "$@"
  "$NGINX" -p "$T" -c "$NGINX_CONF" -e "$T/nginx-$name-error.log" 2>"$T/nginx-$name-stderr.log" &
  NGINX_PID=$!
  PIDS+=("$NGINX_PID")
}

# wrk, bounded: it stops itself after -d, timeout catches a wrk that does not.
# With PIPELINE > 1, each write wrk makes carries that many requests (wrk counts every
# response), from a Lua script. With DELAY > 0, each connection waits that many ms after a
# response before it sends the next request (a Lua script too): a load below saturation.
SCRIPT=()
wrk_setup() {
  if [ "$DELAY" -gt 0 ]; then
    echo "delay = function() return $DELAY end" >"$T/delay.lua"
    SCRIPT=(-s "$T/delay.lua")
    return 0
  fi
  [ "$PIPELINE" -gt 1 ] || return 0
  cat >"$T/pipeline.lua" <<LUA
init = function(args)
  local r = {}
  for i = 1, $PIPELINE do r[i] = wrk.format(nil, "/hello") end
  batch = table.concat(r)
end
request = function() return batch end
LUA
  SCRIPT=(-s "$T/pipeline.lua")
}
wrk_run() { # seconds port [--latency]
  bounded $(($1 + 30)) wrk -t"$THREADS" -c"$CONNS" -d"$1"s "${SCRIPT[@]}" "${@:3}" "http://127.0.0.1:$2/hello"
}

# measure name seconds port pid...: one wrk run against port; appends "req_per_s p99_ms
# cpu_us_per_req errors" to $T/name (the CPU of every pid given), copies that row to
# $T/last and wrk's error lines to $T/wrk.err; prints wrk's output and fails when wrk fails
# or its output does not parse.
measure() {
  local name=$1 secs=$2 port=$3 before after
  before=$(cpu_ticks "${@:4}")
  wrk_run "$secs" "$port" --latency >"$T/wrk.out" 2>&1 || { cat "$T/wrk.out" >&2; die "wrk failed against $name"; }
  after=$(cpu_ticks "${@:4}")
  /usr/bin/python3 - "$T/wrk.out" "$before" "$after" "$PIPELINE" >>"$T/$name" <<'PY' || { cat "$T/wrk.out" >&2; die "cannot read wrk's output ($name)"; }
import os, re, sys
out = open(sys.argv[1]).read()
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
m = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
p99 = float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]
if int(sys.argv[4]) > 1: p99 = -1  # wrk times the batch, not each request: no figure
reqs = int(re.search(r"(\d+) requests in", out).group(1))
errs = 0
m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
if m: errs += int(m.group(1))
m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
if m: errs += sum(int(x) for x in m.groups())
ticks = int(sys.argv[3]) - int(sys.argv[2])
cpu = ticks / os.sysconf("SC_CLK_TCK") * 1e6 / max(reqs, 1)
print(f"{rps:.0f} {p99:.3f} {cpu:.2f} {errs}")
PY
  tail -n1 "$T/$name" >"$T/last"
  # wrk's own lines about errors, shown under the row they belong to
  grep -E 'Non-2xx|Socket errors' "$T/wrk.out" | sed 's/^ */         /' >"$T/wrk.err" || true
}

row() { printf '%-6s %-6s %10s %9s %11s %7s\n' "$@"; }
# show_last round name: the row measure just appended, and wrk's error lines under it
show_last() {
  local a b c d
  read -r a b c d <"$T/last"
  [ "$b" != -1.000 ] || b=-
  row "$1" "$2" "$a" "$b" "$c" "$d"
  cat "$T/wrk.err"
}

# summary A B [C0 C1 C2]: medians of $T/A and $T/B and the median of the per-round ratios
# A/B; exits non-zero (after printing) when any run had errors. C0-C2 name the three columns
# (default req/s, p99, cpu/req; the first is the one where higher is better).
summary() {
  /usr/bin/python3 - "$T/$1" "$T/$2" "$1" "$2" "${3:-req/s}" "${4:-p99}" "${5:-cpu/req}" <<'PY'
import statistics, sys
w = [list(map(float, l.split())) for l in open(sys.argv[1])]
n = [list(map(float, l.split())) for l in open(sys.argv[2])]
a, b = sys.argv[3], sys.argv[4]
c0, c1, c2 = sys.argv[5:8]
med = statistics.median
print(f"{'':8}{c0:>10}{c1 + ' ms':>10}{c2.replace('/', ' us/'):>12}")
for name, rows in ((a, w), (b, n)):
    p99 = med([r[1] for r in rows])
    p99 = f"{p99:>10.3f}" if p99 >= 0 else f"{'-':>10}"
    print(f"{name:8}{med([r[0] for r in rows]):>10.0f}{p99}{med([r[2] for r in rows]):>12.2f}")
def ratios(i):
    return sorted(x[i] / y[i] for x, y in zip(w, n) if y[i] > 0 and x[i] >= 0)
def ratio(i):
    rs = ratios(i)
    return f"{med(rs):.2f}x" if rs else "n/a"
print(f"{a + '/' + b:12} {c0} {ratio(0)}   {c1} {ratio(1)}   {c2} {ratio(2)}"
      f"   (median of per-round ratios; {c0} above 1 and {c1}, cpu below 1 favour {a})")
# How far the median ratio can be trusted: a distribution-free confidence interval for
# the median from order statistics (the k-th smallest and k-th largest ratio, where
# P(Binomial(N, 1/2) < k) <= 2.5% on each side), and in how many rounds each was better.
def interval(rs):
    N, k, tail = len(rs), 0, 0.0
    from math import comb
    while k < N and tail + comb(N, k) / 2**N <= 0.025:
        tail += comb(N, k) / 2**N
        k += 1
    if k == 0:
        return "no confidence interval (it needs 6 or more rounds)"
    return f"median ratio within {rs[k - 1]:.2f}x..{rs[N - k]:.2f}x ({100 * (1 - 2 * tail):.0f}% confidence)"
for i, what, higher in ((0, c0, True), (1, c1, False), (2, c2, False)):
    rs = ratios(i)
    if not rs:
        continue
    better = sum(1 for r in rs if (r > 1 if higher else r < 1))
    ties = sum(1 for r in rs if r == 1)
    print(f"  {what:8} {interval(rs)}; {a} better in {better} of {len(rs)} rounds"
          + (f", equal in {ties}" if ties else ""))
errs = sum(r[3] for r in w + n)
if errs:
    print(f"WARNING: {errs:.0f} non-2xx responses or socket errors in the runs above")
    sys.exit(1)
PY
}
