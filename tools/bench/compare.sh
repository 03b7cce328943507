#!/bin/sh
# compare.sh: libtriplestream (tri-bench) against gRPC C++ sync (grpc-bench)
# and the raw loopback TCP floor (tri-rawtcp), in the same run, alternating,
# several rounds; prints per-workload medians, the ratio ours/theirs and
# PASS/MISS for each target of issue 5.
#
#   tools/bench/compare.sh [BUILD_DIR] [--rounds N] [--quick]
#                          [--workloads W1,W2,...] [--out FILE]
#                          [--tls | --tls-dir DIR]
#                          [-- FLAGS for tri-bench and grpc-bench]
#
# BUILD_DIR is the top of a build tree configured with
# --enable-grpc-compare (or its tools/bench directory); default: the build
# tree this script sits in, else the current directory.  --quick passes
# --quick to every program (small counts, a smoke run of a minute or two)
# and defaults to 1 round; otherwise 5 rounds of the full-size workloads.
# Each round runs, for every workload, both implementations one after the
# other (the order flips every round), then tri-rawtcp.  Every result line
# goes to FILE (default: a new file under ${TMPDIR:-/tmp}); the table is
# computed from it.  --tls runs both over TLS (default workloads W1,W2,W3)
# with certificates made by test/tls/gen-certs.sh in FILE.certs, or taken
# from DIR (ca.pem, server.pem, server.key; the server certificate must
# name 127.0.0.1); rows are named W1.tls etc., the raw TCP run is left
# out.  Exit status: 0 all targets met, 1 a target missed or a run failed,
# 2 usage error or missing programs.
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
  sed -n '2,26s/^# \{0,1\}//p' "$0"
}

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
    -h|--help) usage; exit 0 ;;
    --) shift; extra="$*"; break ;;
    -*) echo "compare.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
    *) [ -z "$build" ] || { usage >&2; exit 2; }; build=$1 ;;
  esac
  shift
done

if [ -z "$workloads" ]; then
  if [ -n "$tls" ]; then workloads=W1,W2,W3; else workloads=W1,W2,W3,W4,W5,W6,W7; fi
fi

case ${rounds:-x} in
  x) if [ -n "$quick" ]; then rounds=1; else rounds=5; fi ;;
  *[!0-9]*|0) echo "compare.sh: --rounds needs a positive number" >&2; exit 2 ;;
esac

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

failed=0
run() { # run NAME PROGRAM ARGS...
  name=$1
  shift
  echo "== $name: $*" >> "$log"
  # shellcheck disable=SC2086
  if ! run_bounded "$@" >> "$out" 2>> "$log"; then
    echo "compare.sh: $name failed (see $log)" >&2
    failed=1
  fi
}

# bench NAME PROGRAM WORKLOAD: one run of tri-bench or grpc-bench.
bench() {
  if [ -n "$tls" ]; then
    # shellcheck disable=SC2086
    run "$1 $3" "$2" --workload="$3" $quick --tls-ca="$tlsdir/ca.pem" \
      --tls-cert="$tlsdir/server.pem" --tls-key="$tlsdir/server.key" $extra
  else
    # shellcheck disable=SC2086
    run "$1 $3" "$2" --workload="$3" $quick $extra
  fi
}

wl=$(echo "$workloads" | tr ',' ' ')
echo "compare.sh: $rounds round(s) of $wl ${quick:+(quick) }${tls:+over TLS }in $bdir" >&2
echo "compare.sh: result lines -> $out, stderr -> $log" >&2
r=1
while [ "$r" -le "$rounds" ]; do
  for w in $wl; do
    echo "compare.sh: round $r/$rounds $w" >&2
    if [ $((r % 2)) -eq 1 ]; then
      bench tri "$tri" "$w"
      bench grpc "$grpc" "$w"
    else
      bench grpc "$grpc" "$w"
      bench tri "$tri" "$w"
    fi
  done
  # The raw floor is clear-text TCP: not run for TLS (column "-").
  [ -n "$tls" ] || run "raw" "$raw" --workload=W1,W2 $quick
  r=$((r + 1))
done

echo
echo "libtriplestream vs gRPC C++ $(pkg-config --modversion grpc++ 2>/dev/null || echo sync) (sync API), loopback, $(nproc 2>/dev/null || echo '?') CPUs, medians of $rounds round(s)${quick:+, --quick counts}"
echo "ratio = tri/grpc (lower is better for W4, W5, W6); raw = tri-rawtcp floor"
if [ -n "$tls" ]; then
  # What each side said it negotiated (bench_tls_note), once per kind.
  echo "over TLS, certificates in $tlsdir; negotiated (per program and side):"
  sed -n 's/^\([a-z-]*\): tls \(client\|server\): /  \1 \2: /p' "$log" |
    sort | uniq -c | sed 's/^ *\([0-9]*\) \(.*\)/\2  (x\1)/'
  echo "issue 5's clear-text targets, applied to the TLS rows for reference"
fi
echo

awk -v rounds="$rounds" '
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
  printf "%-16s %-26s %11s %11s %7s %9s  %-38s %s\n", "case", "metric", \
    "tri", "grpc", "ratio", "raw", "target", "result"
  misses = 0
  for (c = 1; c <= ncases; c++) {
    k = order[c]
    b = k
    sub(/\.tls$/, "", b)                # TLS rows: the clear-text target
    t = median(vals[k, "tri"]); g = median(vals[k, "grpc"]); rw = median(vals[k, "raw"])
    if (cnt[k, "tri"] == 0 && cnt[k, "grpc"] == 0) continue   # raw-only rows
    ratio = (t != "" && g != "" && g + 0 != 0) ? t / g : ""
    target = "-"; res = ""
    ok_t = (t != "" && !bad[k, "tri"])
    ok_g = (g != "" && !bad[k, "grpc"])
    if (b == "W1") { target = ">= 1.5x grpc"; pass = ok_t && ok_g && ratio >= 1.5 }
    else if (b == "W2.big") {
      target = ">= 1.2x grpc and >= 40% of raw"
      pass = ok_t && ok_g && ratio >= 1.2 && (rw == "" || t >= 0.4 * rw)
      if (rw != "") target = target sprintf(" (%.0f)", 0.4 * rw)
    }
    else if (b == "W2.small") { target = ">= 1.5x grpc"; pass = ok_t && ok_g && ratio >= 1.5 }
    else if (b == "W3.t1") { target = ">= 1.2x grpc"; pass = ok_t && ok_g && ratio >= 1.2 }
    else if (b == "W3.t8" || b == "W3.t32") { target = ">= 1.5x grpc"; pass = ok_t && ok_g && ratio >= 1.5 }
    else if (b == "W4." w4max ".total") {
      if (ok_g) { target = "<= 1/4 of grpc"; pass = ok_t && t <= g / 4 }
      else { target = "<= 16384 B (grpc failed)"; pass = ok_t && t <= 16384 }
    }
    else if (b == "W5") { target = "p99 <= 100 us and < grpc"; pass = ok_t && t <= 100 && (!ok_g || t < g) }
    else if (b == "W6") { target = "p99 <= 1000 us"; pass = ok_t && t <= 1000 }
    else if (b == "W7") { target = ">= 1.5x grpc"; pass = ok_t && ok_g && ratio >= 1.5 }
    if (target != "-") { res = pass ? "PASS" : "MISS"; if (!pass) misses++ }
    if (bad[k, "tri"]) res = res " (tri run invalid)"
    if (bad[k, "grpc"]) res = res " (grpc run invalid)"
    printf "%-16s %-26s %11s %11s %7s %9s  %-38s %s\n", k, metric[k], fmt(t), \
      fmt(g), (ratio == "" ? "-" : sprintf("%.2f", ratio)), fmt(rw), target, res
  }
  print ""
  printf "targets missed: %d\n", misses
  exit misses ? 1 : 0
}' "$out"
status=$?
echo "raw result lines: $out"
if [ "$failed" -ne 0 ]; then
  echo "compare.sh: some runs failed; see $log" >&2
  exit 1
fi
exit $status
