// grpc-bench: the tri-bench workloads W1-W7 written against gRPC C++'s
// synchronous API (grpc::Server + ServerBuilder, generated stubs,
// ClientReaderWriter & co), for the side-by-side comparison of issue 5.
//
// Flags, driver and output lines are shared with tri-bench
// (../bench-common.c): same flags, same lines with impl=grpc.  See
// ../tri-bench.c and ../README.md for the workloads and the format.
//
// Choices, kept equal to tri-bench where the APIs allow:
//  * one channel (one HTTP/2 connection) per workload, shared by all
//    client threads (W3);
//  * every call carries a deadline (W3: 30 s, streams: 600 s);
//  * the server is the default synchronous server (thread per active RPC
//    from gRPC's thread manager); for W4 the advertised max concurrent
//    streams is raised like tri-bench's;
//  * payloads are Payload{bytes body} (bench.proto) of --size bytes;
//  * TLS (--tls-ca, --tls-cert, --tls-key): SslServerCredentials with the
//    certificate and key (no client certificates), SslCredentials that
//    verify the server with the CA; gRPC's defaults otherwise.  Each side
//    prints what it negotiated once on stderr: the AuthContext's
//    properties, and the TLS version and cipher, which the AuthContext
//    does not carry, from libssl itself (see SSL_do_handshake below).
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "bench.grpc.pb.h"
#include "bench-common.h"

using grpc::ClientContext;
using grpc::ServerContext;
using grpc::Status;
using grpc::StatusCode;
using tribench::Payload;
using tribench::StreamReq;

namespace {

const char *const kProg = "grpc-bench";
const char *const kImpl = "grpc";
constexpr int kStreamDeadlineMs = 600000;
constexpr int kUnaryDeadlineMs = 30000;

std::chrono::system_clock::time_point After(int ms) {
  return std::chrono::system_clock::now() + std::chrono::milliseconds(ms);
}

// ------------------------------------------------------------------
// TLS
// ------------------------------------------------------------------

bool g_tls;  // --tls-*: server and channels use TLS

// What libssl negotiated, per side (index: 0 client, 1 server); static
// strings from libssl, written by the handshake hook.
std::atomic<const char *> g_tls_version[2], g_tls_cipher[2];

bool ReadFile(const char *path, std::string *out) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  *out = ss.str();
  if (!f || out->empty()) {
    std::fprintf(stderr, "%s: cannot read %s\n", kProg, path);
    return false;
  }
  return true;
}

std::string AuthProp(const grpc::AuthContext &a, const char *name) {
  auto v = a.FindPropertyValues(name);
  return v.empty() ? "-" : std::string(v[0].data(), v[0].size());
}

// Once per side: what the first TLS call's connection negotiated.
void NoteTls(const char *side, const grpc::AuthContext *a) {
  int i = std::strcmp(side, "server") == 0;
  char detail[300];
  if (a == nullptr ||
      AuthProp(*a, GRPC_TRANSPORT_SECURITY_TYPE_PROPERTY_NAME) != "ssl") {
    std::fprintf(stderr, "%s: tls %s: the call went without TLS\n", kProg,
                 side);
    return;
  }
  std::snprintf(detail, sizeof detail,
                "transport_security_type=ssl security_level=%s "
                "peer_cert_cn=%s",
                AuthProp(*a, GRPC_TRANSPORT_SECURITY_LEVEL_PROPERTY_NAME)
                    .c_str(),
                AuthProp(*a, GRPC_X509_CN_PROPERTY_NAME).c_str());
  bench_tls_note(kProg, side, g_tls_version[i].load(), g_tls_cipher[i].load(),
                 detail);
}

std::atomic<bool> g_srv_noted{false};

void NoteServerTls(ServerContext *ctx) {
  if (!g_tls || g_srv_noted.load(std::memory_order_relaxed))
    return;
  g_srv_noted = true;
  NoteTls("server", ctx->auth_context().get());
}

// ------------------------------------------------------------------
// Server
// ------------------------------------------------------------------

// W6: the reactor of one Silent call.  It never answers; gRPC calls
// OnCancel when the call ends without an answer (the client's deadline,
// seen by the server's own deadline timer, or the client's RST_STREAM),
// and the reactor finishes then: no thread waits or polls meanwhile.
class SilentReactor final : public grpc::ServerUnaryReactor {
 public:
  void OnCancel() override {
    Finish(Status(StatusCode::CANCELLED, "silent"));
  }
  void OnDone() override { delete this; }
};

// The synchronous service, except Silent, which uses the callback API so
// that it can wait for the cancellation without polling (the sync API's
// ServerContext has only IsCancelled()).
class BenchService final
    : public tribench::Bench::WithCallbackMethod_Silent<
          tribench::Bench::Service> {
 public:
  // Echo without copying the body: the request is gRPC's to free after
  // this returns and nothing reads it again, so its string is moved into
  // the response (the sync API hands it over as const; this is what a
  // careful user does to avoid the copy).
  Status Unary(ServerContext *ctx, const Payload *req,
               Payload *resp) override {
    NoteServerTls(ctx);
    resp->mutable_body()->swap(*const_cast<Payload *>(req)->mutable_body());
    bench_unary_ok();  // W7: the server's count of status-OK answers
    return Status::OK;
  }

  Status PingPong(ServerContext *ctx,
                  grpc::ServerReaderWriter<Payload, Payload> *st) override {
    NoteServerTls(ctx);
    Payload p;
    while (st->Read(&p)) {
      if (!st->Write(p))
        break;
    }
    return Status::OK;
  }

  Status Stream(ServerContext *ctx, const StreamReq *req,
                grpc::ServerWriter<Payload> *w) override {
    NoteServerTls(ctx);
    if (req->size() == 0 || req->size() > (8u << 20))
      return Status(StatusCode::INVALID_ARGUMENT, "size");
    Payload p;
    p.set_body(std::string(req->size(), 'x'));
    for (uint64_t i = 0; i < req->count(); i++) {
      if (!w->Write(p))
        return Status(StatusCode::CANCELLED, "write failed");
    }
    return Status::OK;
  }

  grpc::ServerUnaryReactor *Silent(grpc::CallbackServerContext *,
                                   const Payload *, Payload *) override {
    return new SilentReactor();
  }
};

BenchService *g_service;
std::unique_ptr<grpc::Server> g_server;

int SrvStart(const bench_opts *o, const char *hp, int *port) {
  grpc::ServerBuilder b;
  std::shared_ptr<grpc::ServerCredentials> creds =
      grpc::InsecureServerCredentials();
  if (o->tls) {
    grpc::SslServerCredentialsOptions so;  // no client certificates
    grpc::SslServerCredentialsOptions::PemKeyCertPair kc;
    if (!ReadFile(o->tls_key, &kc.private_key) ||
        !ReadFile(o->tls_cert, &kc.cert_chain))
      return -1;
    so.pem_key_cert_pairs.push_back(kc);
    creds = grpc::SslServerCredentials(so);
    g_tls = true;
  }
  g_service = new BenchService();
  b.AddListeningPort(hp, creds, port);
  b.RegisterService(g_service);
  if (o->workloads & (1u << 4)) {
    long n = o->w4_max + 64;
    b.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS,
                         static_cast<int>(n));
  }
  g_server = b.BuildAndStart();
  return g_server && *port > 0 ? 0 : -1;
}

void SrvStop() {
  if (g_server) {
    g_server->Shutdown(After(100));
    g_server->Wait();
    g_server.reset();
  }
  delete g_service;
  g_service = nullptr;
}

// ------------------------------------------------------------------
// Client helpers
// ------------------------------------------------------------------

// Credentials of every channel: clear text, or TLS verifying the server
// with --tls-ca.  Set up by ClientSetup().
std::shared_ptr<grpc::ChannelCredentials> g_chcreds;

int ClientSetup(const bench_opts *o) {
  if (g_chcreds)
    return 0;
  if (!o->tls) {
    g_chcreds = grpc::InsecureChannelCredentials();
    return 0;
  }
  grpc::SslCredentialsOptions so;
  if (!ReadFile(o->tls_ca, &so.pem_root_certs))
    return -1;
  g_chcreds = grpc::SslCredentials(so);
  g_tls = true;
  return 0;
}

// With TLS, once per process: one unary call on |stub| (before any
// timing), then print what its connection negotiated.
void NoteClientTls(tribench::Bench::Stub *stub) {
  static bool done;
  if (!g_tls || done)
    return;
  done = true;
  ClientContext ctx;
  Payload req, resp;
  req.set_body("x");
  ctx.set_deadline(After(kUnaryDeadlineMs));
  Status s = stub->Unary(&ctx, req, &resp);
  if (!s.ok())
    return;  // the workload reports the failure
  NoteTls("client", ctx.auth_context().get());
}

std::unique_ptr<tribench::Bench::Stub> NewStub(const char *target) {
  auto ch = grpc::CreateChannel(target, g_chcreds);
  auto stub = tribench::Bench::NewStub(ch);
  NoteClientTls(stub.get());
  return stub;
}

void Fail(const char *what, const Status &s) {
  std::fprintf(stderr, "%s: %s: code %d (%s)\n", kProg, what,
               static_cast<int>(s.error_code()), s.error_message().c_str());
}

Payload MakePayload(const bench_opts *o) {
  Payload p;
  p.set_body(std::string(static_cast<size_t>(o->size), 'x'));
  return p;
}

// Cancels the context it watches when an operation takes longer than
// |limit_ms|: the sync API has no per-Read timeout, and a server that
// cannot take one more stream (W4) must not hang the benchmark.
class Watchdog {
 public:
  explicit Watchdog(int limit_ms) : limit_ms_(limit_ms) {
    thread_ = std::thread([this] { Run(); });
  }
  ~Watchdog() {
    {
      std::lock_guard<std::mutex> l(mu_);
      stop_ = true;
    }
    thread_.join();
  }
  void Arm(ClientContext *ctx) {
    std::lock_guard<std::mutex> l(mu_);
    ctx_ = ctx;
    since_ = bench_now_ns();
  }
  void Disarm() {
    std::lock_guard<std::mutex> l(mu_);
    ctx_ = nullptr;
  }
  bool fired() const { return fired_.load(); }

 private:
  void Run() {
    for (;;) {
      {
        std::lock_guard<std::mutex> l(mu_);
        if (stop_)
          return;
        if (ctx_ && bench_now_ns() - since_ > int64_t{limit_ms_} * 1000000) {
          ctx_->TryCancel();
          ctx_ = nullptr;
          fired_ = true;
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  int limit_ms_;
  std::mutex mu_;
  bool stop_ = false;
  ClientContext *ctx_ = nullptr;
  int64_t since_ = 0;
  std::atomic<bool> fired_{false};
  std::thread thread_;
};

using Bidi = grpc::ClientReaderWriter<Payload, Payload>;

// Open a PingPong stream and do one round trip.
std::unique_ptr<Bidi> OpenEcho(tribench::Bench::Stub *stub,
                               ClientContext *ctx, const Payload &req,
                               Watchdog *wd) {
  if (wd)
    wd->Arm(ctx);
  std::unique_ptr<Bidi> st = stub->PingPong(ctx);
  Payload resp;
  bool ok = st->Write(req) && st->Read(&resp) &&
            resp.body().size() == req.body().size();
  if (wd)
    wd->Disarm();
  if (!ok) {
    ctx->TryCancel();
    Fail("echo round trip", st->Finish());
    return nullptr;
  }
  return st;
}

// ------------------------------------------------------------------
// W1: ping-pong
// ------------------------------------------------------------------

int W1(const bench_opts *o, const char *target) {
  auto stub = NewStub(target);
  Payload req = MakePayload(o), resp;
  std::vector<int64_t> lat(static_cast<size_t>(o->w1_n));
  ClientContext ctx;
  ctx.set_deadline(After(kStreamDeadlineMs));
  auto st = OpenEcho(stub.get(), &ctx, req, nullptr);
  if (!st)
    return -1;
  int64_t t0 = 0;
  bench_cpu c0{0, -1}, c1;
  for (long i = 0; i < o->warmup + o->w1_n; i++) {
    if (i == o->warmup) {
      bench_cpu_take(&c0);
      t0 = bench_now_ns();
    }
    int64_t a = bench_now_ns();
    if (!st->Write(req) || !st->Read(&resp) ||
        resp.body().size() != req.body().size()) {
      ctx.TryCancel();
      Fail("W1 round trip", st->Finish());
      return -1;
    }
    if (i >= o->warmup)
      lat[static_cast<size_t>(i - o->warmup)] = bench_now_ns() - a;
  }
  int64_t t1 = bench_now_ns();
  bench_cpu_take(&c1);
  double secs = static_cast<double>(t1 - t0) / 1e9;
  char extra[256];
  bench_lat_extra(extra, sizeof extra, lat.data(), lat.size());
  std::snprintf(extra + std::strlen(extra), sizeof extra - std::strlen(extra),
                " secs=%.3f size=%d ok=1", secs, o->size);
  bench_line(kImpl, "W1", "W1", "rt_per_s",
             static_cast<double>(o->w1_n) / secs, extra);
  bench_cpu_line(kImpl, "W1", "W1", "cpu_us_per_call", o->w1_n, &c0, &c1);
  st->WritesDone();
  Status s = st->Finish();
  if (!s.ok()) {
    Fail("W1 finish", s);
    return -1;
  }
  return 0;
}

// ------------------------------------------------------------------
// W2: server streaming throughput
// ------------------------------------------------------------------

int W2One(tribench::Bench::Stub *stub, int size, uint64_t count,
          const char *cs) {
  StreamReq req;
  req.set_size(static_cast<uint32_t>(size));
  req.set_count(count);
  ClientContext ctx;
  ctx.set_deadline(After(kStreamDeadlineMs));
  Payload p;
  uint64_t got = 0, bytes = 0;
  bench_cpu c0, c1;
  bench_cpu_take(&c0);
  int64_t t0 = bench_now_ns();
  auto rd = stub->Stream(&ctx, req);
  while (rd->Read(&p)) {
    got++;
    bytes += p.body().size();
  }
  int64_t t1 = bench_now_ns();
  bench_cpu_take(&c1);
  Status s = rd->Finish();
  if (!s.ok() || got != count) {
    Fail("W2 stream", s);
    return -1;
  }
  if (cs == nullptr)
    return 0;
  double secs = static_cast<double>(t1 - t0) / 1e9;
  double mbps = static_cast<double>(got) * size / 1e6 / secs;
  double mps = static_cast<double>(got) / secs;
  bool big = std::strcmp(cs, "W2.big") == 0;
  char extra[256];
  std::snprintf(extra, sizeof extra,
                "size=%d n=%llu secs=%.3f %s=%.1f body_bytes=%llu ok=1", size,
                static_cast<unsigned long long>(got), secs,
                big ? "msgs_per_s" : "MB_per_s", big ? mps : mbps,
                static_cast<unsigned long long>(bytes));
  bench_line(kImpl, "W2", cs, big ? "MB_per_s" : "msgs_per_s",
             big ? mbps : mps, extra);
  bench_cpu_line(kImpl, "W2", cs, "cpu_us_per_msg",
                 static_cast<long long>(got), &c0, &c1);
  return 0;
}

int W2(const bench_opts *o, const char *target) {
  auto stub = NewStub(target);
  uint64_t big_n = static_cast<uint64_t>(
      (o->w2_big_bytes + o->w2_big_size - 1) / o->w2_big_size);
  int rc = 0;
  if (W2One(stub.get(), o->w2_small_size, 1, nullptr) != 0)
    return -1;
  if (W2One(stub.get(), o->w2_big_size, big_n, "W2.big") != 0)
    rc = -1;
  if (W2One(stub.get(), o->w2_small_size,
            static_cast<uint64_t>(o->w2_small_n), "W2.small") != 0)
    rc = -1;
  return rc;
}

// ------------------------------------------------------------------
// W3: unary calls from T threads sharing one channel
// ------------------------------------------------------------------

int W3(const bench_opts *o, const char *target) {
  auto stub = NewStub(target);
  Payload req = MakePayload(o);
  for (long i = 0; i < o->warmup; i++) {
    ClientContext ctx;
    Payload resp;
    ctx.set_deadline(After(kUnaryDeadlineMs));
    Status s = stub->Unary(&ctx, req, &resp);
    if (!s.ok()) {
      Fail("W3 warm-up", s);
      return -1;
    }
  }
  int rc = 0;
  for (int k = 0; k < o->w3_nthreads; k++) {
    int nt = o->w3_threads[k];
    long per = (o->w3_calls + nt - 1) / nt;
    std::vector<int64_t> lat(static_cast<size_t>(per) * nt);
    std::vector<std::thread> th;
    std::atomic<int> errors{0}, ready{0};
    std::atomic<bool> go{false};
    for (int t = 0; t < nt; t++) {
      th.emplace_back([&, t] {
        int64_t *l = lat.data() + static_cast<size_t>(t) * per;
        ready++;
        while (!go.load())
          std::this_thread::yield();
        for (long i = 0; i < per; i++) {
          ClientContext ctx;
          Payload resp;
          ctx.set_deadline(After(kUnaryDeadlineMs));
          int64_t a = bench_now_ns();
          Status s = stub->Unary(&ctx, req, &resp);
          l[i] = bench_now_ns() - a;
          if (!s.ok() || resp.body().size() != req.body().size()) {
            if (errors++ == 0)
              Fail("W3 unary", s);
          }
        }
      });
    }
    while (ready.load() < nt)
      std::this_thread::yield();
    bench_cpu c0, c1;
    bench_cpu_take(&c0);
    int64_t t0 = bench_now_ns();
    go = true;
    for (auto &t : th)
      t.join();
    int64_t t1 = bench_now_ns();
    bench_cpu_take(&c1);
    double secs = static_cast<double>(t1 - t0) / 1e9;
    char cs[32], extra[256];
    std::snprintf(cs, sizeof cs, "W3.t%d", nt);
    std::snprintf(extra, sizeof extra, "threads=%d ", nt);
    bench_lat_extra(extra + std::strlen(extra),
                    sizeof extra - std::strlen(extra), lat.data(), lat.size());
    std::snprintf(extra + std::strlen(extra),
                  sizeof extra - std::strlen(extra),
                  " secs=%.3f errors=%d ok=%d", secs, errors.load(),
                  errors.load() == 0);
    bench_line(kImpl, "W3", cs, "calls_per_s",
               static_cast<double>(lat.size()) / secs, extra);
    bench_cpu_line(kImpl, "W3", cs, "cpu_us_per_call",
                   static_cast<long long>(lat.size()), &c0, &c1);
    if (errors.load())
      rc = -1;
  }
  return rc;
}

// ------------------------------------------------------------------
// W4: idle bidi streams -> RSS per stream
// ------------------------------------------------------------------

void W4Report(long count, long opened, bool ok, long long c0, long long c1,
              long long s0, long long s1, double secs) {
  char cs[48], extra[200];
  double pc = opened ? static_cast<double>(c1 - c0) / opened : 0;
  double ps = opened ? static_cast<double>(s1 - s0) / opened : 0;
  std::snprintf(cs, sizeof cs, "W4.%ld.client", count);
  std::snprintf(extra, sizeof extra,
                "streams=%ld n=%ld side=client rss_kib=%lld open_secs=%.2f "
                "ok=%d",
                count, opened, c1 / 1024, secs, ok);
  bench_line(kImpl, "W4", cs, "rss_per_stream_bytes", pc, extra);
  if (s0 < 0 || s1 < 0) {
    std::fprintf(stderr, "%s: W4: server RSS unknown (use --server-pid)\n",
                 kProg);
    return;
  }
  std::snprintf(cs, sizeof cs, "W4.%ld.server", count);
  std::snprintf(extra, sizeof extra,
                "streams=%ld n=%ld side=server rss_kib=%lld ok=%d", count,
                opened, s1 / 1024, ok);
  bench_line(kImpl, "W4", cs, "rss_per_stream_bytes", ps, extra);
  std::snprintf(cs, sizeof cs, "W4.%ld.total", count);
  std::snprintf(extra, sizeof extra, "streams=%ld n=%ld side=total ok=%d",
                count, opened, ok);
  bench_line(kImpl, "W4", cs, "rss_per_stream_bytes", pc + ps, extra);
}

int W4(const bench_opts *o, const char *target) {
  auto stub = NewStub(target);
  Payload req = MakePayload(o);
  long spid = bench_server_pid();
  Watchdog wd(30000);
  {
    ClientContext ctx;
    ctx.set_deadline(After(kStreamDeadlineMs));
    auto st = OpenEcho(stub.get(), &ctx, req, &wd);
    if (!st)
      return -1;
    st->WritesDone();
    if (!st->Finish().ok())
      return -1;
  }
  bench_sleep_ns(100000000);
  long long c0 = bench_rss_bytes(0);
  long long s0 = spid ? bench_rss_bytes(spid) : -1;
  std::vector<std::unique_ptr<ClientContext>> ctxs;
  std::vector<std::unique_ptr<Bidi>> sts;
  ctxs.reserve(static_cast<size_t>(o->w4_max));
  sts.reserve(static_cast<size_t>(o->w4_max));
  bool ok = true;
  long opened = 0;
  int64_t t0 = bench_now_ns();
  for (int k = 0; k < o->w4_ncounts; k++) {
    long count = o->w4_streams[k];
    while (ok && opened < count) {
      std::unique_ptr<ClientContext> ctx(new ClientContext);
      ctx->set_deadline(After(kStreamDeadlineMs));
      auto st = OpenEcho(stub.get(), ctx.get(), req, &wd);
      if (!st) {
        std::fprintf(stderr, "%s: W4: stream %ld failed%s\n", kProg,
                     opened + 1, wd.fired() ? " (no answer in 30 s)" : "");
        ok = false;
        break;
      }
      ctxs.push_back(std::move(ctx));
      sts.push_back(std::move(st));
      opened++;
    }
    bench_sleep_ns(200000000);
    W4Report(count, opened, ok && opened == count, c0, bench_rss_bytes(0), s0,
             spid ? bench_rss_bytes(spid) : -1,
             static_cast<double>(bench_now_ns() - t0) / 1e9);
  }
  for (size_t i = 0; i < sts.size(); i++) {
    ctxs[i]->TryCancel();
    (void)sts[i]->Finish();
  }
  return ok ? 0 : -1;
}

// ------------------------------------------------------------------
// W5: cancel wakes a thread blocked in Read
// ------------------------------------------------------------------

int W5(const bench_opts *o, const char *target) {
  auto stub = NewStub(target);
  Payload req = MakePayload(o);
  std::vector<int64_t> lat;
  long errors = 0, unparked = 0;
  int rc = 0;
  for (long r = 0; r < o->w5_reps; r++) {
    ClientContext ctx;
    ctx.set_deadline(After(kStreamDeadlineMs));
    auto st = OpenEcho(stub.get(), &ctx, req, nullptr);
    if (!st) {
      rc = -1;
      break;
    }
    std::atomic<long> tid{0};
    std::atomic<int> ready{0};
    int64_t t_ret = 0;
    bool read_ok = true;
    std::thread th([&] {
      Payload resp;
      tid = bench_gettid();
      ready = 1;
      read_ok = st->Read(&resp);
      t_ret = bench_now_ns();
    });
    int64_t end = bench_now_ns() + INT64_C(5000000000);
    while (!ready.load() && bench_now_ns() < end)
      bench_sleep_ns(10000);
    if (bench_wait_parked(tid.load(), 1000) != 0)
      unparked++;
    int64_t t0 = bench_now_ns();
    ctx.TryCancel();
    th.join();
    Status s = st->Finish();
    if (read_ok || s.error_code() != StatusCode::CANCELLED) {
      if (errors++ == 0)
        Fail("W5: Read after TryCancel", s);
    } else {
      lat.push_back(t_ret - t0);
    }
  }
  char extra[256];
  double p99 = bench_pct_us(lat.data(), lat.size(), 99.0);
  bench_lat_extra(extra, sizeof extra, lat.data(), lat.size());
  std::snprintf(extra + std::strlen(extra), sizeof extra - std::strlen(extra),
                " errors=%ld not_parked=%ld ok=%d", errors, unparked,
                errors == 0 && rc == 0 && !lat.empty());
  bench_line(kImpl, "W5", "W5", "cancel_wake_p99_us", p99, extra);
  return errors ? -1 : rc;
}

// ------------------------------------------------------------------
// W6: deadline overshoot against a silent server
// ------------------------------------------------------------------

int W6(const bench_opts *o, const char *target) {
  auto stub = NewStub(target);
  Payload req = MakePayload(o);
  {
    ClientContext ctx;
    Payload resp;
    ctx.set_deadline(After(kUnaryDeadlineMs));
    Status s = stub->Unary(&ctx, req, &resp);
    if (!s.ok()) {
      Fail("W6 warm-up", s);
      return -1;
    }
  }
  {
    // one untimed Silent call: first-use costs on both sides
    ClientContext ctx;
    Payload resp;
    ctx.set_deadline(After(o->w6_deadline_ms));
    Status s = stub->Silent(&ctx, req, &resp);
    if (s.error_code() != StatusCode::DEADLINE_EXCEEDED) {
      Fail("W6 warm-up: expected DEADLINE_EXCEEDED", s);
      return -1;
    }
  }
  std::vector<int64_t> lat;
  long errors = 0;
  int64_t dl = int64_t{o->w6_deadline_ms} * 1000000;
  for (long r = 0; r < o->w6_reps; r++) {
    ClientContext ctx;
    Payload resp;
    int64_t t0 = bench_now_ns();
    ctx.set_deadline(After(o->w6_deadline_ms));
    Status s = stub->Silent(&ctx, req, &resp);
    int64_t t1 = bench_now_ns();
    if (s.error_code() != StatusCode::DEADLINE_EXCEEDED) {
      if (errors++ == 0)
        Fail("W6: expected DEADLINE_EXCEEDED", s);
      continue;
    }
    lat.push_back(t1 - t0 - dl);
  }
  char extra[256];
  double p99 = bench_pct_us(lat.data(), lat.size(), 99.0);
  bench_lat_extra(extra, sizeof extra, lat.data(), lat.size());
  std::snprintf(extra + std::strlen(extra), sizeof extra - std::strlen(extra),
                " deadline_ms=%d errors=%ld ok=%d", o->w6_deadline_ms, errors,
                errors == 0 && !lat.empty());
  bench_line(kImpl, "W6", "W6", "deadline_overshoot_p99_us", p99, extra);
  return errors ? -1 : 0;
}

// W8: many channels, one unary call each, then idle: client RSS per
// channel.  Each channel gets its own connection, as each of tri's does:
// gRPC otherwise shares one subchannel (and connection) among channels
// to the same target.
int W8(const bench_opts *o, const char *target) {
  long n = o->w8_channels, opened = 0;
  bool ok = true;
  Payload req = MakePayload(o);
  std::vector<std::shared_ptr<grpc::Channel>> chs;
  std::vector<std::unique_ptr<tribench::Bench::Stub>> stubs;
  chs.reserve(static_cast<size_t>(n) + 1);
  stubs.reserve(static_cast<size_t>(n) + 1);
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  long long rss0 = -1;
  long thr0 = -1;
  // Channel 0 warms up and is not counted: the first channel's one-time
  // costs (code pages, gRPC's thread pools and globals) are not a
  // channel's.
  for (long i = 0; i <= n && ok; i++) {
    if (i == 1) {
      rss0 = bench_rss_bytes(0);
      thr0 = bench_threads();
    }
    chs.push_back(grpc::CreateCustomChannel(target, g_chcreds, args));
    stubs.push_back(tribench::Bench::NewStub(chs.back()));
    opened = i + 1;
    ClientContext ctx;
    Payload resp;
    ctx.set_deadline(After(kUnaryDeadlineMs));
    Status s = stubs.back()->Unary(&ctx, req, &resp);
    if (!s.ok() || resp.body().size() != req.body().size()) {
      Fail("W8 call", s);
      ok = false;
    }
  }
  if (opened <= 1) {
    rss0 = bench_rss_bytes(0);
    thr0 = bench_threads();
  }
  bench_sleep_ns(INT64_C(500000000));
  long long rss1 = bench_rss_bytes(0);
  long thr1 = bench_threads();
  bench_w8_report(kImpl, n, opened > 0 ? opened - 1 : 0, rss0, rss1, thr0,
                  thr1, ok);
  return ok ? 0 : -1;
}

int ClientRun(const bench_opts *o, int w, const char *target) {
  if (ClientSetup(o) != 0)
    return -1;
  switch (w) {
  case 1:
    return W1(o, target);
  case 2:
    return W2(o, target);
  case 3:
    return W3(o, target);
  case 4:
    return W4(o, target);
  case 5:
    return W5(o, target);
  case 6:
    return W6(o, target);
  case 8:
    return W8(o, target);
  default:
    return -1;
  }
}

int CheckUnary(const bench_opts *o, const char *target) {
  if (ClientSetup(o) != 0)
    return -1;
  auto stub = NewStub(target);
  Payload req = MakePayload(o), resp;
  ClientContext ctx;
  ctx.set_deadline(After(kUnaryDeadlineMs));
  Status s = stub->Unary(&ctx, req, &resp);
  return s.ok() && resp.body() == req.body() ? 0 : -1;
}

}  // namespace

#ifdef BENCH_SSL_PROBE
// gRPC's AuthContext names neither the TLS version nor the cipher.  gRPC
// drives its handshakes with libssl's SSL_do_handshake() (the same libssl
// as libtriplestream: both link the system's OpenSSL 3), so this
// definition, which the dynamic linker prefers to libssl's, passes each
// call on and records the result of the one that completes.  A handful
// of calls per connection; nothing on the data path.
#include <dlfcn.h>
#include <openssl/ssl.h>

extern "C" int SSL_do_handshake(SSL *ssl) {
  using Fn = int (*)(SSL *);
  static Fn real = reinterpret_cast<Fn>(dlsym(RTLD_NEXT, "SSL_do_handshake"));
  if (real == nullptr)
    return -1;
  int r = real(ssl);
  if (r == 1) {
    int i = SSL_is_server(ssl) ? 1 : 0;
    const char *unset = nullptr;
    if (g_tls_version[i].compare_exchange_strong(unset, SSL_get_version(ssl)))
      g_tls_cipher[i] = SSL_get_cipher_name(ssl);
  }
  return r;
}
#endif

int main(int argc, char **argv) {
  static const bench_impl impl = {kImpl,     kProg,      SrvStart, SrvStop,
                                  ClientRun, CheckUnary, 0};
  return bench_main(argc, argv, &impl);
}
