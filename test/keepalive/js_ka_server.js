// grpc-js server for test/keepalive/run_keepalive_js.sh (the Node half of
// run_keepalive_py.sh).
//
// Usage: node js_ka_server.js
// Serves /test.Ka/Ping (echoes the request bytes) with @grpc/grpc-js and
// its default settings on 127.0.0.1, an ephemeral port printed as
// "listening on 127.0.0.1:PORT".  grpc-js (1.14.7, the version
// js/package-lock.json pins) has no server option that enforces a minimum
// ping interval: PINGs are answered by Node's http2 module, which has no
// such limit (grpc.http2.min_ping_interval_without_data_ms and
// grpc.http2.max_ping_strikes are not among its options).  So that the
// test can see what the client did, every new HTTP/2 connection prints
// "session" and every PING it receives "ping MS open_streams=N" (ms since
// the connection began, streams open at that moment), by hooking the
// http2 server grpc-js creates.  Runs until SIGTERM.
'use strict';

const http2 = require('http2');

const createServer = http2.createServer;
http2.createServer = function (...args) {
  const srv = createServer.apply(this, args);
  srv.on('session', (session) => {
    const t0 = Date.now();
    let open = 0;
    console.log('session');
    session.on('stream', (stream) => {
      open++;
      stream.on('close', () => open--);
    });
    session.on('ping', () =>
      console.log('ping ' + (Date.now() - t0) + ' ms open_streams=' + open));
  });
  return srv;
};

const grpc = require('@grpc/grpc-js');

const same = (b) => b;
const service = {
  Ping: {
    path: '/test.Ka/Ping',
    requestStream: false,
    responseStream: false,
    requestSerialize: same,
    requestDeserialize: same,
    responseSerialize: same,
    responseDeserialize: same,
  },
};

const server = new grpc.Server();
server.addService(service, {
  Ping: (call, callback) => callback(null, call.request),
});
server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(),
  (err, port) => {
    if (err) {
      console.error('bind: ' + err.message);
      process.exit(1);
    }
    console.log('listening on 127.0.0.1:' + port);
  });
const stop = () => server.forceShutdown();
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
