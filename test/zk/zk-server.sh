#!/bin/sh
# Run a throw-away standalone ZooKeeper (Debian's `zookeeper` package) on
# loopback for the tests and examples.
#
#   zk-server.sh start DIR [PORT]   start it with its data in DIR (created);
#                                   PORT 0 or absent: a free port.  Prints
#                                   the port and returns once ZooKeeper
#                                   answers (at most 60 s), else fails.
#   zk-server.sh stop DIR           kill it (SIGKILL: its sessions are not
#                                   closed; the data dir stays).
#   zk-server.sh port DIR           the port it was started on.
#
# Exit status: 0, 1 on failure, 77 when ZooKeeper or Java is not installed.
set -u
cmd=${1:-}
dir=${2:-}
test -n "$cmd" && test -n "$dir" || {
  echo "usage: $0 start|stop|port DIR [PORT]" >&2
  exit 1
}

JAVA=${JAVA:-java}
ZK_JAR=${TRI_ZK_JAR:-/usr/share/java/zookeeper.jar}

free_port() {
  # Ask the kernel for a free loopback port.
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null && return
  echo $(( 20000 + $$ % 20000 ))
}

# 1 when something answers on 127.0.0.1:$1 as a ZooKeeper server would.
answers() {
  python3 - "$1" <<'PY' 2>/dev/null
import socket, struct, sys
# A ZooKeeper ConnectRequest: protocolVersion, lastZxidSeen, timeOut,
# sessionId, passwd (16 zero bytes).  A live server answers with a
# ConnectResponse.
body = struct.pack(">iqiqi", 0, 0, 4000, 0, 16) + b"\0" * 16
try:
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2)
    s.sendall(struct.pack(">i", len(body)) + body)
    s.settimeout(2)
    d = s.recv(4)
    sys.exit(0 if len(d) == 4 else 1)
except Exception:
    sys.exit(1)
PY
}

case $cmd in
start)
  command -v "$JAVA" >/dev/null 2>&1 || { echo "zk-server.sh: no java" >&2; exit 77; }
  test -r "$ZK_JAR" || { echo "zk-server.sh: $ZK_JAR missing (apt-get install zookeeper)" >&2; exit 77; }
  port=${3:-0}
  test "$port" = 0 && port=$(free_port)
  mkdir -p "$dir/data" || exit 1
  cat > "$dir/zoo.cfg" <<CFG
tickTime=500
minSessionTimeout=1000
maxSessionTimeout=60000
initLimit=10
syncLimit=5
dataDir=$dir/data
clientPort=$port
clientPortAddress=127.0.0.1
admin.enableServer=false
4lw.commands.whitelist=ruok,stat
CFG
  cat > "$dir/log4j.properties" <<'L4J'
log4j.rootLogger=WARN, CONSOLE
log4j.appender.CONSOLE=org.apache.log4j.ConsoleAppender
log4j.appender.CONSOLE.layout=org.apache.log4j.PatternLayout
log4j.appender.CONSOLE.layout.ConversionPattern=%d{ISO8601} %-5p %c{1}: %m%n
L4J
  # Small heap, quick start; the server runs in the background with its
  # output in DIR/zk.log.
  "$JAVA" -Xms32m -Xmx128m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
    -Dzookeeper.log.dir="$dir" -Dlog4j.configuration="file:$dir/log4j.properties" \
    -Dzookeeper.admin.enableServer=false \
    -cp "$dir:$ZK_JAR" org.apache.zookeeper.server.ZooKeeperServerMain \
    "$dir/zoo.cfg" > "$dir/zk.log" 2>&1 < /dev/null &
  echo $! > "$dir/pid"
  echo "$port" > "$dir/port"
  i=0
  while [ $i -lt 600 ]; do          # 60 s at most
    if ! kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
      echo "zk-server.sh: ZooKeeper exited; its log:" >&2
      tail -20 "$dir/zk.log" >&2
      exit 1
    fi
    if answers "$port"; then
      echo "$port"
      exit 0
    fi
    sleep 0.1
    i=$((i + 1))
  done
  echo "zk-server.sh: ZooKeeper did not answer on port $port within 60 s" >&2
  tail -20 "$dir/zk.log" >&2
  kill -9 "$(cat "$dir/pid")" 2>/dev/null
  exit 1
  ;;
stop)
  test -f "$dir/pid" || exit 0
  pid=$(cat "$dir/pid")
  kill -9 "$pid" 2>/dev/null
  i=0
  while kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do
    sleep 0.1; i=$((i + 1))
  done
  rm -f "$dir/pid"
  exit 0
  ;;
port)
  cat "$dir/port"
  ;;
*)
  echo "usage: $0 start|stop|port DIR [PORT]" >&2
  exit 1
  ;;
esac
