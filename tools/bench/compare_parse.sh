#!/bin/sh
# compare_parse.sh: compare.sh's table is complete and parses.
#
# Runs tri-bench, tri-rawtcp (and grpc-bench when it was built) with tiny
# counts -- every workload, the typed default and --raw, W7 on many
# connections, W7 with 2 server I/O loops, W8's idle channels (each with
# a thread, and on one shared thread), the
# hand-off floors (W1's and
# W5's cancel floor), and W1
# over TLS -- then
# `compare.sh --from FILE` on their result lines, and checks that every
# row issue 12 asks for is there with the format
#   case metric tri grpc ratio raw target result
# (numbers or "-" in the four value columns) and that the summary line
# follows.  Without grpc-bench (a tree configured without
# --enable-grpc-compare) the grpc column is filled from tri-bench's own
# lines relabelled impl=grpc: the test is about the table, not the numbers.
#
# Needs h2load (nghttp2-client) for W7: missing, it fails (skips with
# exit 77 only when TRI_ALLOW_SKIP=1).  Run from tools/bench in the build
# tree (make check); $srcdir is this script's directory.
set -u

srcdir=${srcdir:-$(dirname "$0")}
here=$(pwd)
fail() {
  echo "compare_parse.sh: FAIL: $*" >&2
  exit 1
}

[ -x "$here/tri-bench" ] && [ -x "$here/tri-rawtcp" ] ||
  fail "tri-bench / tri-rawtcp not built in $here"
if [ ! -x /usr/bin/h2load ]; then
  if [ "${TRI_ALLOW_SKIP:-}" = 1 ]; then
    echo "compare_parse.sh: SKIP: no /usr/bin/h2load (nghttp2-client)"
    exit 77
  fi
  fail "no /usr/bin/h2load (apt-get install nghttp2-client)"
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/compare_parse.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT INT TERM
res=$tmp/results
log=$tmp/log
: > "$res"

tiny="--warmup=10 --w1-n=300 --w2-big-bytes=1048576 --w2-small-n=300
  --w3-calls=200 --w3-threads=1,8 --w4-streams=10,20 --w5-reps=5
  --w6-reps=3 --w6-deadline-ms=20 --w7-n=600 --h2load-timeout=60"
c1000="--w7-c=50 --w7-m=1 --w7-idle=50 --w7-tag=c1000"
lim() { timeout -k 5 120 "$@"; }

# run PROGRAM ARGS...: result lines to $res, the rest to $log.
run() {
  echo "== $*" >> "$log"
  # shellcheck disable=SC2086
  lim "$@" >> "$res" 2>> "$log" || {
    tail -30 "$log" >&2
    fail "$* failed"
  }
}

# shellcheck disable=SC2086
{
  run ./tri-bench --workload=W1,W2,W3,W4,W5,W6,W7 $tiny
  run ./tri-bench --workload=W1,W2,W3 --raw $tiny
  run ./tri-bench --workload=W7 $tiny $c1000
  run ./tri-bench --workload=W8 --w8-channels=10
  run ./tri-bench --workload=W8 --w8-channels=10 --io-group=1
  run ./tri-rawtcp --workload=W1,W2 --n=300 --bytes=1048576
  run ./tri-rawtcp --workload=W1 --handoff --procs --n=300
  run ./tri-rawtcp --workload=W1 --handoff --procs --n=300 \
    --floor-case=W3.t1.floor
  run ./tri-rawtcp --workload=W5 --handoff --procs --w5-reps=5
}

# TLS rows, when the library has TLS and openssl can make certificates.
tls=
if sh "$srcdir/../../test/tls/gen-certs.sh" "$tmp/certs" >> "$log" 2>&1; then
  tflags="--tls-ca=$tmp/certs/ca.pem --tls-cert=$tmp/certs/server.pem
    --tls-key=$tmp/certs/server.key"
  # shellcheck disable=SC2086
  if lim ./tri-bench --workload=W1 --w1-n=50 --warmup=5 $tflags \
      >> "$tmp/tls" 2>> "$log"; then
    # shellcheck disable=SC2086
    run ./tri-bench --workload=W1 --w1-n=50 --warmup=5 --raw $tflags
    cat "$tmp/tls" >> "$res"
    tls=1
  elif grep -q "UNIMPLEMENTED\|without TLS\|not built" "$log"; then
    echo "compare_parse.sh: the library has no TLS: no .tls rows checked"
  else
    tail -30 "$log" >&2
    fail "tri-bench over TLS failed"
  fi
fi

# W7.io1 / W7.io2: tri's server with N I/O loops (needs
# tri_server_opts_set_io_threads in the library).
io=
echo "== ./tri-bench --workload=W7 --io-threads=2" >> "$log"
# shellcheck disable=SC2086
if lim ./tri-bench --workload=W7 --io-threads=2 $tiny >> "$tmp/io" 2>> "$log"; then
  cat "$tmp/io" >> "$res"
  io=1
elif grep -q "has no tri_server_opts_set_io_threads" "$log"; then
  echo "compare_parse.sh: the library has no tri_server_opts_set_io_threads: no W7.io rows checked"
else
  tail -30 "$log" >&2
  fail "tri-bench --io-threads=2 failed"
fi

# The grpc column.
if [ -x "$here/grpc-bench" ]; then
  # shellcheck disable=SC2086
  {
    run ./grpc-bench --workload=W1,W2,W3,W4,W5,W6,W7 $tiny
    run ./grpc-bench --workload=W7 $tiny $c1000
    run ./grpc-bench --workload=W8 --w8-channels=10
    [ -z "$tls" ] || run ./grpc-bench --workload=W1 --w1-n=50 --warmup=5 $tflags
  }
else
  grep '^tri-bench impl=tri ' "$res" | grep -v ' api=raw' |
    sed 's/^tri-bench impl=tri /tri-bench impl=grpc /' > "$tmp/grpc"
  cat "$tmp/grpc" >> "$res"
fi

sh "$srcdir/compare.sh" --from "$res" > "$tmp/table" 2>> "$log"
st=$?
[ "$st" -eq 0 ] || [ "$st" -eq 1 ] ||
  { cat "$tmp/table" >&2; fail "compare.sh --from exited $st"; }

want="W1 W1.floor W1.cpu W1.raw W1.raw.cpu W2.big W2.big.cpu W2.small
  W2.small.cpu W2.big.raw W2.big.raw.cpu W2.small.raw W2.small.raw.cpu
  W3.t1 W3.t1.floor W3.t1.cpu W3.t8 W3.t8.cpu W3.t1.raw W3.t1.raw.cpu
  W3.t8.raw W3.t8.raw.cpu W4.20.total W5 W6 W7 W7.c1000 W7.c1000.rss W8
  W8.grp1"
[ -z "$tls" ] || want="$want W1.tls W1.cpu.tls W1.raw.tls W1.raw.cpu.tls"
[ -z "$io" ] || want="$want W7.io2"
# Rows that compare both implementations (a number in the grpc column).
both="W1 W1.cpu W2.big W2.small W2.small.cpu W3.t1 W3.t1.cpu W3.t8 W4.20.total
  W5 W6 W7 W7.c1000 W7.c1000.rss W1.floor W3.t1.floor W7.io2 W8 W8.grp1"
# Rows with a target (PASS or MISS in the result column).
targeted="W1 W1.floor W2.big W2.small W3.t1 W3.t1.floor W3.t1.cpu W3.t8
  W3.t8.cpu W4.20.total W5 W6 W7 W7.io2 W7.c1000 W7.c1000.rss"

awk -v want="$want" -v both="$both" -v targeted="$targeted" '
function num(v) { return v ~ /^-?[0-9]+(\.[0-9]+)?$/ }
function err(m) { print "compare_parse.sh: " m > "/dev/stderr"; bad++ }
NR == 1 && $1 == "libtriplestream" { next }
$1 == "case" && $2 == "metric" && $3 == "tri" && $4 == "grpc" &&
  $5 == "ratio" && $6 == "raw" && $7 == "target" && $8 == "result" {
  header = 1; next
}
header && /^targets missed: [0-9]+$/ { summary = 1; next }
header && NF > 0 && !summary {
  if (NF < 7) { err("short row: " $0); next }
  if ($1 in seen) err("row twice: " $1)
  seen[$1] = 1
  if ($2 !~ /^[A-Za-z_0-9]+$/) err("bad metric: " $0)
  for (i = 3; i <= 6; i++)
    if (!num($i) && $i != "-") err("column " i " not a number: " $0)
  if (!num($3)) err("no tri value: " $0)
  grpc[$1] = $4; last[$1] = $NF
  if ($1 ~ /\.floor$/ && !num($6)) err("floor row without the floor: " $0)
  if ($1 == "W5" && !num($6)) err("W5 without the cancel floor: " $0)
  if ($1 ~ /\.floor$/ && $2 != "pct_of_floor") err("floor metric: " $0)
  if ($1 ~ /\.cpu(\.tls)?$/ && $2 !~ /^cpu_us_per_(call|msg)$/) err("cpu metric: " $0)
}
END {
  if (!header) err("no header line")
  if (!summary) err("no \"targets missed: N\" line")
  n = split(want, w, /[ \n]+/)
  for (i = 1; i <= n; i++) if (w[i] != "" && !(w[i] in seen)) err("row missing: " w[i])
  n = split(both, w, /[ \n]+/)
  for (i = 1; i <= n; i++) if (w[i] != "" && (w[i] in seen) && !num(grpc[w[i]])) err("no grpc value: " w[i])
  n = split(targeted, w, /[ \n]+/)
  for (i = 1; i <= n; i++)
    if (w[i] != "" && (w[i] in seen) && last[w[i]] != "PASS" && last[w[i]] != "MISS")
      err("no PASS/MISS: " w[i])
  exit bad ? 1 : 0
}' "$tmp/table" || { cat "$tmp/table" >&2; fail "the table does not parse"; }

echo "compare_parse.sh: PASS ($(grep -c . "$tmp/table") lines)"
exit 0
