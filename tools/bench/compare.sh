#!/bin/sh
# compare.sh: libtriplestream (tri-bench) against gRPC C++ sync (grpc-bench)
# and the raw loopback TCP floor (tri-rawtcp), in the same run, alternating,
# several rounds; prints per-workload medians, the ratio ours/theirs and
# PASS/MISS for each target of issue 12.
#
#   tools/bench/compare.sh [BUILD_DIR] [--rounds N] [--quick]
#                          [--workloads W1,W2,...] [--out FILE]
#                          [--tls | --tls-dir DIR] [--from FILE]
#                          [-- FLAGS for tri-bench and grpc-bench]
#
# BUILD_DIR is the top of a build tree configured with
# --enable-grpc-compare (or its tools/bench directory); default: the build
# tree this script sits in, else the current directory.  --quick passes
# --quick to every program (small counts, a smoke run of a minute or two)
# and defaults to 1 round; otherwise 5 rounds of the full-size workloads.
# Each round runs, for every workload, both implementations one after the
# other (the order flips every round), then that workload's tri-rawtcp
# floor if it has one (W1, W2, W3, W5).  Every result line
# goes to FILE (default: a new file under ${TMPDIR:-/tmp}); the table is
# computed from it.  --tls runs both over TLS (default workloads W1,W2,W3)
# with certificates made by test/tls/gen-certs.sh in FILE.certs, or taken
# from DIR (ca.pem, server.pem, server.key; the server certificate must
# name 127.0.0.1); rows are named W1.tls etc., the raw TCP run is left
# out.  Besides each workload, tri-bench --raw runs W1-W3 (rows *.raw),
# tri-bench --io-threads=1 and =2 run W7 (W7.io1, W7.io2), W7 runs again
# on 1000 connections (W7.c1000, W7.c1000.rss) and, in clear
# text, tri-rawtcp --handoff gives the design's floor (W1.floor,
# W3.t1.floor).  W8 (clear text) is the client's RSS per idle channel,
# 1000 channels with one call each, each on its own connection (no
# target); W8.grp1 the same with tri's channels on one shared I/O thread
# (tri-bench --io-group=1), beside gRPC's W8.  --from FILE prints the table of an earlier run's result
# lines without running anything.  Exit status: 0 all targets met, 1 a
# target missed or a run failed, 2 usage error or missing programs.
set -u

rounds=
quick=
workloads=
out=
tls=
tlsdir=
build=
extra=

usage() {
  sed -n '2,33s/^# \{0,1\}//p' "$0"
}
from=

while [ $# -gt 0 ]; do
  case $1 in
    --rounds) [ $# -ge 2 ] || { usage >&2; exit 2; }; rounds=$2; shift ;;
    --rounds=*) rounds=${1#--rounds=} ;;
    --quick) quick=--quick ;;
    --workloads) [ $# -ge 2 ] || { usage >&2; exit 2; }; workloads=$2; shift ;;
    --workloads=*) workloads=${1#--workloads=} ;;
    --out) [ $# -ge 2 ] || { usage >&2; exit 2; }; out=$2; shift ;;
    --out=*) out=${1#--out=} ;;
    --tls) tls=1 ;;
    --tls-dir) [ $# -ge 2 ] || { usage >&2; exit 2; }; tls=1; tlsdir=$2; shift ;;
    --tls-dir=*) tls=1; tlsdir=${1#--tls-dir=} ;;
    --from) [ $# -ge 2 ] || { usage >&2; exit 2; }; from=$2; shift ;;
    --from=*) from=${1#--from=} ;;
    -h|--help) usage; exit 0 ;;
    --) shift; extra="$*"; break ;;
    -*) echo "compare.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
    *) [ -z "$build" ] || { usage >&2; exit 2; }; build=$1 ;;
  esac
  shift
done

if [ -z "$workloads" ]; then
  if [ -n "$tls" ]; then workloads=W1,W2,W3; else workloads=W1,W2,W3,W4,W5,W6,W7,W8; fi
fi

case ${rounds:-x} in
  x) if [ -n "$quick" ]; then rounds=1; else rounds=5; fi ;;
  *[!0-9]*|0) echo "compare.sh: --rounds needs a positive number" >&2; exit 2 ;;
esac

# The table of a result file (median per case and implementation).
table() { # table FILE
  awk '
function median(list,    n, a, i, j, t) {
  n = split(list, a, " ")
  for (i = 2; i <= n; i++) {            # insertion sort, n is small
    t = a[i] + 0
    for (j = i - 1; j >= 1 && a[j] + 0 > t; j--) a[j + 1] = a[j]
    a[j + 1] = t
  }
  if (n == 0) return ""
  if (n % 2) return a[(n + 1) / 2] + 0
  return (a[n / 2] + a[n / 2 + 1]) / 2
}
function fmt(v) {
  if (v == "") return "-"
  if (v + 0 >= 100 || v + 0 <= -100) return sprintf("%.0f", v)
  return sprintf("%.1f", v)
}
function row(k, m, t, g, rw, target, res,    ratio) {
  ratio = (t != "" && g != "" && g + 0 != 0) ? t / g : ""
  printf "%-20s %-26s %11s %11s %7s %9s  %-38s %s\n", k, m, fmt(t), \
    fmt(g), (ratio == "" ? "-" : sprintf("%.2f", ratio)), fmt(rw), target, res
}
# A floor row: tri and grpc as a percentage of the hand-off floor (raw).
# Its floor: the run named after the row (the one measured next to its
# workload), else W1.floor.
function floor_row(k, base,    fk, f, t, g, pt, pg, pass, res) {
  fk = ((k, "raw") in vals) ? k : "W1.floor"
  f = median(vals[fk, "raw"])
  if (f == "" || f + 0 <= 0) return
  t = median(vals[base, "tri"]); g = median(vals[base, "grpc"])
  pt = (t != "" && !bad[base, "tri"]) ? 100 * t / f : ""
  pg = (g != "" && !bad[base, "grpc"]) ? 100 * g / f : ""
  pass = pt != "" && pt >= 90 && !bad[fk, "raw"]
  res = pass ? "PASS" : "MISS"
  if (!pass) misses++
  row(k, "pct_of_floor", pt, pg, f, ">= 90% of floor", res)
}
/^tri-bench / {
  delete kv
  for (i = 2; i <= NF; i++) {
    p = index($i, "=")
    if (p) kv[substr($i, 1, p - 1)] = substr($i, p + 1)
  }
  k = kv["case"]; im = kv["impl"]
  if (!(k in metric)) { order[++ncases] = k; metric[k] = kv["metric"] }
  vals[k, im] = vals[k, im] " " kv["value"]
  cnt[k, im]++
  if (("ok" in kv) && kv["ok"] != "1") bad[k, im] = 1
  if (k ~ /^W4\./) {
    split(k, parts, ".")
    if (parts[2] + 0 > w4max) w4max = parts[2] + 0
  }
}
END {
  printf "%-20s %-26s %11s %11s %7s %9s  %-38s %s\n", "case", "metric", \
    "tri", "grpc", "ratio", "raw", "target", "result"
  misses = 0
  for (c = 1; c <= ncases; c++) {
    k = order[c]
    b = k
    tls = sub(/\.tls$/, "", b)          # TLS rows: the clear-text target
    sfx = tls ? ".tls" : ""
    t = median(vals[k, "tri"]); g = median(vals[k, "grpc"]); rw = median(vals[k, "raw"])
    if (cnt[k, "tri"] == 0 && cnt[k, "grpc"] == 0) continue   # raw-only rows
    gk = k
    # W7.io1, W7.io2: tri with 1 and 2 I/O loops, beside gRPC as it is.
    if (g == "" && b ~ /^W7\.io[0-9]+$/) { gk = "W7" sfx; g = median(vals[gk, "grpc"]) }
    # W8.grp1: tri channels sharing one I/O thread, beside gRPC as it is.
    if (g == "" && b ~ /^W8\.grp[0-9]+$/) { gk = "W8" sfx; g = median(vals[gk, "grpc"]) }
    # *.raw rows: the raw TCP floor of their base case.
    if (rw == "" && b ~ /\.raw$/) { rb = b; sub(/\.raw$/, "", rb); rw = median(vals[rb sfx, "raw"]) }
    ratio = (t != "" && g != "" && g + 0 != 0) ? t / g : ""
    target = "-"; res = ""
    ok_t = (t != "" && !bad[k, "tri"])
    ok_g = (g != "" && !bad[gk, "grpc"])
    if (b == "W1") { target = ">= 1.3x grpc"; pass = ok_t && ok_g && ratio >= 1.3 }
    else if (b == "W2.big") {
      target = ">= 1.5x grpc and >= 60% of raw"
      pass = ok_t && ok_g && ratio >= 1.5 && (rw == "" || t >= 0.6 * rw)
      if (rw != "") target = target sprintf(" (%.0f)", 0.6 * rw)
    }
    else if (b == "W2.small") { target = ">= 3x grpc"; pass = ok_t && ok_g && ratio >= 3 }
    else if (b == "W3.t1") { target = ">= 1.2x grpc"; pass = ok_t && ok_g && ratio >= 1.2 }
    else if (b == "W3.t8" || b == "W3.t32") { target = ">= 1.5x grpc"; pass = ok_t && ok_g && ratio >= 1.5 }
    else if (b ~ /^W3\.t[0-9]+\.cpu$/) { target = "<= 0.7x grpc"; pass = ok_t && ok_g && ratio <= 0.7 }
    else if (b == "W4." w4max ".total") { target = "<= 17408 B (17 KiB)"; pass = ok_t && t <= 17408 }
    else if (b == "W5") { target = "p99 <= 60 us"; pass = ok_t && t <= 60 }
    else if (b == "W6") { target = "p99 <= 500 us"; pass = ok_t && t <= 500 }
    else if (b == "W7" || b ~ /^W7\.io[0-9]+$/ || b == "W7.c1000") { target = ">= 1.5x grpc"; pass = ok_t && ok_g && ratio >= 1.5 }
    else if (b == "W7.c1000.rss") { target = "<= 0.5x grpc"; pass = ok_t && ok_g && ratio <= 0.5 }
    if (target != "-") { res = pass ? "PASS" : "MISS"; if (!pass) misses++ }
    if (bad[k, "tri"]) res = res " (tri run invalid)"
    if (bad[gk, "grpc"]) res = res " (grpc run invalid)"
    row(k, metric[k], t, g, rw, target, res)
    # the design floor is clear text (tri-rawtcp --handoff)
    if (b == "W1" && !tls) floor_row("W1.floor", k)
    if (b == "W3.t1" && !tls) floor_row("W3.t1.floor", k)
  }
  print ""
  printf "targets missed: %d\n", misses
  exit misses ? 1 : 0
}' "$1"
}

if [ -n "$from" ]; then
  if [ ! -r "$from" ]; then
    echo "compare.sh: cannot read $from" >&2
    exit 2
  fi
  echo "libtriplestream vs gRPC C++: the table of $from"
  echo "ratio = tri/grpc (lower is better for W4, W5, W6, W8 and *.cpu); raw = tri-rawtcp floor"
  echo
  table "$from"
  exit $?
fi

# Find the programs.
if [ -z "$build" ]; then
  here=$(cd "$(dirname "$0")" && pwd)
  if [ -x "$here/tri-bench" ]; then build=$here; else build=$(pwd); fi
fi
if [ -x "$build/tools/bench/tri-bench" ]; then
  bdir=$build/tools/bench
elif [ -x "$build/tri-bench" ]; then
  bdir=$build
else
  echo "compare.sh: no tri-bench under $build (build first: make)" >&2
  exit 2
fi
tri=$bdir/tri-bench
grpc=$bdir/grpc-bench
raw=$bdir/tri-rawtcp
if [ ! -x "$grpc" ]; then
  cat >&2 <<EOF
compare.sh: $grpc was not built.
  It is only built in a tree configured for it:
    apt-get install libgrpc++-dev protobuf-compiler-grpc   (Debian)
    ./configure --enable-grpc-compare && make
  then run: tools/bench/compare.sh BUILD_DIR
EOF
  exit 2
fi
if [ ! -x "$raw" ]; then
  echo "compare.sh: $raw missing (make -C $bdir)" >&2
  exit 2
fi

if [ -z "$out" ]; then
  out=$(mktemp "${TMPDIR:-/tmp}/tri-compare.XXXXXX") || exit 2
fi
: > "$out" || exit 2
log=$out.log
: > "$log"

# TLS: the certificates, made once per run unless given.
if [ -n "$tls" ]; then
  if [ -z "$tlsdir" ]; then
    gen=$(cd "$(dirname "$0")" && pwd)/../../test/tls/gen-certs.sh
    if [ ! -f "$gen" ]; then
      echo "compare.sh: $gen not found: give the certificates with --tls-dir DIR" >&2
      exit 2
    fi
    tlsdir=$out.certs
    rm -rf "$tlsdir"
    sh "$gen" "$tlsdir" >> "$log" 2>&1 || {
      echo "compare.sh: cannot make certificates (see $log)" >&2
      exit 2
    }
  fi
  for f in ca.pem server.pem server.key; do
    if [ ! -r "$tlsdir/$f" ]; then
      echo "compare.sh: $tlsdir/$f missing (--tls-dir needs ca.pem, server.pem, server.key)" >&2
      exit 2
    fi
  done
fi

# Bound every run in time.
if [ -n "$quick" ]; then limit=600; else limit=3600; fi
if command -v timeout > /dev/null 2>&1; then
  run_bounded() { timeout -k 10 "$limit" "$@"; }
else
  run_bounded() { "$@"; }
fi

# W7 on many connections (W7.c1000): first 1000 idle HTTP/2 connections
# for the server's RSS per connection, then h2load -c 1000 -m 1.  The
# benches raise their own open-files limit to the hard limit; h2load
# inherits it from them.
c1000="--w7-c=1000 --w7-m=1 --w7-idle=1000 --w7-tag=c1000"

failed=0
run() { # run NAME PROGRAM ARGS...
  name=$1
  shift
  echo "== $name: $*" >> "$log"
  if ! run_bounded "$@" >> "$out" 2>> "$log"; then
    echo "compare.sh: $name failed (see $log)" >&2
    failed=1
  fi
}

# bench NAME PROGRAM WORKLOAD [FLAGS...]: one run of tri-bench or grpc-bench.
bench() {
  bn=$1; bp=$2; bw=$3
  shift 3
  if [ -n "$tls" ]; then
    # shellcheck disable=SC2086
    run "$bn $bw${*:+ $*}" "$bp" --workload="$bw" $quick \
      --tls-ca="$tlsdir/ca.pem" --tls-cert="$tlsdir/server.pem" \
      --tls-key="$tlsdir/server.key" "$@" $extra
  else
    # shellcheck disable=SC2086
    run "$bn $bw${*:+ $*}" "$bp" --workload="$bw" $quick "$@" $extra
  fi
}

# both WORKLOAD [FLAGS...]: tri-bench and grpc-bench, one after the other;
# the order flips every round.
both() {
  if [ $((r % 2)) -eq 1 ]; then
    bench tri "$tri" "$@"
    bench grpc "$grpc" "$@"
  else
    bench grpc "$grpc" "$@"
    bench tri "$tri" "$@"
  fi
}

wl=$(echo "$workloads" | tr ',' ' ')
echo "compare.sh: $rounds round(s) of $wl ${quick:+(quick) }${tls:+over TLS }in $bdir" >&2
echo "compare.sh: result lines -> $out, stderr -> $log" >&2
r=1
while [ "$r" -le "$rounds" ]; do
  for w in $wl; do
    echo "compare.sh: round $r/$rounds $w" >&2
    both "$w"
    case $w in
      W1|W2|W3)
        # the raw-bytes API beside the typed default (rows *.raw)
        bench tri "$tri" "$w" --raw ;;
      W7)
        # tri's server with 1 and 2 I/O loops (W7.io1, W7.io2), beside
        # gRPC's W7
        bench tri "$tri" W7 --io-threads=1
        bench tri "$tri" W7 --io-threads=2
        # shellcheck disable=SC2086
        both W7 $c1000 ;;
      W8)
        # tri's channels on one shared I/O thread (W8.grp1), beside
        # gRPC's W8
        bench tri "$tri" W8 --io-group=1 ;;
    esac
    # The floors (clear-text TCP only: column "-" over TLS), each right
    # after the workload it is the floor of: this VM's speed drifts by
    # tens of percent within a round (W1.floor 6,993 -> 11,436 rt/s from
    # the first round to the third of one run), so a floor measured
    # minutes later compares different machines.  The hand-off floor
    # runs after W1 (W1.floor) and again after W3 (W3.t1.floor), client
    # and server in two processes like the benches.
    if [ -z "$tls" ]; then
      case $w in
        W1) run "raw" "$raw" --workload=W1 $quick
            run "raw handoff" "$raw" --workload=W1 --handoff --procs $quick ;;
        W2) run "raw" "$raw" --workload=W2 $quick ;;
        W3) run "raw handoff" "$raw" --workload=W1 --handoff --procs \
              --floor-case=W3.t1.floor $quick ;;
        W5) run "raw cancel" "$raw" --workload=W5 --handoff --procs $quick ;;
      esac
    fi
  done
  r=$((r + 1))
done

echo
echo "libtriplestream vs gRPC C++ $(pkg-config --modversion grpc++ 2>/dev/null || echo sync) (sync API), loopback, $(nproc 2>/dev/null || echo '?') CPUs, medians of $rounds round(s)${quick:+, --quick counts}"
echo "ratio = tri/grpc (lower is better for W4, W5, W6, W8 and *.cpu); raw = tri-rawtcp floor"
if [ -n "$tls" ]; then
  # What each side said it negotiated (bench_tls_note), once per kind.
  echo "over TLS, certificates in $tlsdir; negotiated (per program and side):"
  sed -n 's/^\([a-z-]*\): tls \(client\|server\): /  \1 \2: /p' "$log" |
    sort | uniq -c | sed 's/^ *\([0-9]*\) \(.*\)/\2  (x\1)/'
  echo "issue 12's clear-text targets, applied to the TLS rows for reference"
fi
echo

table "$out"
status=$?
echo "raw result lines: $out"
if [ "$failed" -ne 0 ]; then
  echo "compare.sh: some runs failed; see $log" >&2
  exit 1
fi
exit $status
