// dubbojs-peer: a dubbo-js (@apachedubbo/dubbo + dubbo-node 3.0.0-alpha)
// server and client of tri.peer.v1.PeerService for libtriplestream's peer
// tests (test/peers/run_dubbojs.sh).  Run from the directory
// test/peers/build-peers.sh prepared (node_modules and gen/ beside it).
//
//   node peer.mjs server [--http=2|1.1]
//       serves PeerService with dubboNodeAdapter (Triple, gRPC and
//       gRPC-Web) on 127.0.0.1 (h2c, or HTTP/1.1), prints
//       "listening on 127.0.0.1:PORT"; exits on SIGTERM/SIGINT.
//   node peer.mjs client --addr=127.0.0.1:PORT --mode=MODE [--label=L]
//       MODE: triple (createDubboTransport over HTTP/2, binary:
//       application/proto), triple-json (application/json), triple-h1,
//       triple-h1-json (HTTP/1.1), grpc (createGrpcTransport).
//       Cases: unary, unary_error.  One line per case, "PASS L case" or
//       "FAIL L case: why"; exit status = number of failures.
import * as http from "node:http";
import * as http2 from "node:http2";
import { Code, DubboError, createPromiseClient } from "@apachedubbo/dubbo";
import {
  createDubboTransport,
  createGrpcTransport,
  dubboNodeAdapter,
} from "@apachedubbo/dubbo-node";
import { PeerService } from "./gen/tri/peer/v1/peer_dubbo.js";

const args = Object.fromEntries(
  process.argv.slice(3).map((a) => {
    const m = /^--([^=]+)=(.*)$/.exec(a);
    return m ? [m[1], m[2]] : [a, ""];
  }),
);

function serve() {
  const routes = (router) =>
    router.service(PeerService, {
      async unary(req) {
        if (req.status !== 0) {
          throw new DubboError(req.message, req.status);
        }
        return { payload: req.payload, data: req.data, servedBy: "dubbo-js" };
      },
    });
  const handler = dubboNodeAdapter({ routes });
  const server =
    args.http === "1.1" ? http.createServer(handler) : http2.createServer(handler);
  server.listen(0, "127.0.0.1", () => {
    console.log(`listening on 127.0.0.1:${server.address().port}`);
  });
  const stop = () => {
    server.close();
    process.exit(0);
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

async function client() {
  const mode = args.mode || "triple";
  const label = args.label || "";
  const baseUrl = `http://${args.addr}`;
  const httpVersion = mode.startsWith("triple-h1") ? "1.1" : "2";
  const transport =
    mode === "grpc"
      ? createGrpcTransport({ baseUrl, httpVersion: "2" })
      : createDubboTransport({
          baseUrl,
          httpVersion,
          useBinaryFormat: !mode.endsWith("-json"),
        });
  const cli = createPromiseClient(PeerService, transport);
  let failures = 0;
  const pass = (name, d) => console.log(`PASS ${label}${name}${d ? ` (${d})` : ""}`);
  const fail = (name, why) => {
    console.log(`FAIL ${label}${name}: ${why}`);
    failures++;
  };
  const why = (e) =>
    e instanceof DubboError ? `${Code[e.code]}: ${e.rawMessage}` : String(e);

  const data = new Uint8Array([0, 1, 2, 0xff]);
  try {
    const r = await cli.unary(
      { payload: "hello from dubbo-js", data },
      { timeoutMs: 5000 },
    );
    if (r.payload !== "hello from dubbo-js" || Buffer.compare(Buffer.from(r.data), Buffer.from(data)) !== 0) {
      fail("unary", `echo mismatch: payload '${r.payload}', data ${Buffer.from(r.data).toString("hex")}`);
    } else if (!r.servedBy) {
      fail("unary", "response has no served_by");
    } else {
      pass("unary", `served by ${r.servedBy}`);
    }
  } catch (e) {
    fail("unary", why(e));
  }
  try {
    await cli.unary({ status: 7, message: "peer says no" }, { timeoutMs: 5000 });
    fail("unary_error", "call succeeded; expected PERMISSION_DENIED");
  } catch (e) {
    if (e instanceof DubboError && e.code === Code.PermissionDenied && e.rawMessage === "peer says no") {
      pass("unary_error", `PermissionDenied: ${e.rawMessage}`);
    } else {
      fail("unary_error", `got ${why(e)}; expected PermissionDenied: peer says no`);
    }
  }
  process.exit(Math.min(failures, 125));
}

if (process.argv[2] === "server") {
  serve();
} else if (process.argv[2] === "client") {
  client().catch((e) => {
    console.log(`FAIL ${args.label || ""}client: ${e && e.stack ? e.stack : e}`);
    process.exit(1);
  });
} else {
  console.error("usage: node peer.mjs server [--http=2|1.1] | client --addr=H:P --mode=M");
  process.exit(2);
}
