// dubbogo-peer: a dubbo-go v3.3.1 server and client of tri.peer.v1.PeerService
// (test/peers/proto/tri/peer/v1/peer.proto) for libtriplestream's peer tests
// (test/peers/run_dubbogo.sh).
//
//	dubbogo-peer server [--group=G --version=V]
//	    serves PeerService with dubbo-go's Triple protocol (which answers
//	    gRPC, Triple unary over HTTP/2 and HTTP/1.1, proto and JSON) on
//	    127.0.0.1, prints "listening on 127.0.0.1:PORT" once it answers,
//	    exits on SIGTERM/SIGINT.
//	dubbogo-peer client --addr=127.0.0.1:PORT --mode=MODE [--group=G
//	    --version=V] [--cases=a,b] [--label=L]
//	    runs the cases against a PeerService server and prints one line per
//	    case, "PASS L case (detail)" or "FAIL L case: why"; exit status =
//	    number of failures.
//
// Client modes (every one is dubbo-go's own code):
//
//	dubbo        the generated stub on dubbo-go's client (client.NewClient):
//	             in v3.3.1 it speaks gRPC (application/grpc+proto) over
//	             HTTP/2 for every RPC kind;
//	dubbo-json   the same with serialization json (application/grpc+json);
//	triple       dubbo-go's triple_protocol client with WithTriple(): Triple
//	             unary (application/proto, Triple-Protocol-Version,
//	             Triple-Timeout-Ms) over HTTP/2 (h2c prior knowledge);
//	triple-json  the same with WithProtoJSON() (application/json);
//	triple-h1, triple-h1-json  Triple unary over HTTP/1.1.
//
// The Triple modes are unary only (dubbo-go's Triple protocol has no
// streaming form; streams are gRPC).
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"dubbo.apache.org/dubbo-go/v3/client"
	_ "dubbo.apache.org/dubbo-go/v3/imports"
	"dubbo.apache.org/dubbo-go/v3/protocol"
	tri "dubbo.apache.org/dubbo-go/v3/protocol/triple/triple_protocol"
	"dubbo.apache.org/dubbo-go/v3/server"
	"golang.org/x/net/http2"

	pb "libtriplestream.invalid/peers/dubbogo/peerpb"
)

// gRPC status codes by number (tri.Code has the same values).
var codeNames = []string{"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT",
	"DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED",
	"RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
	"UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"}

func codeName(c int) string {
	if c >= 0 && c < len(codeNames) {
		return codeNames[c]
	}
	return fmt.Sprintf("code_%d", c)
}

// ---------------------------------------------------------------- server

// What the server saw of a held call, for "report:TAG".
type record struct {
	code       int
	nanos      int64
	deadlineMs int64
}

type PeerServer struct {
	group, version string
	mu             sync.Mutex
	cond           *sync.Cond
	records        map[string]record
}

func NewPeerServer(group, version string) *PeerServer {
	s := &PeerServer{group: group, version: version, records: map[string]record{}}
	s.cond = sync.NewCond(&s.mu)
	return s
}

// deadlineMs: the time left to ctx's deadline, -1 without one.
func deadlineMs(ctx context.Context) int64 {
	if d, ok := ctx.Deadline(); ok {
		return int64(time.Until(d) / time.Millisecond)
	}
	return -1
}

func (s *PeerServer) note(tag string, err error, dl int64) {
	code := int(tri.CodeUnknown)
	switch {
	case errors.Is(err, context.Canceled):
		code = int(tri.CodeCanceled)
	case errors.Is(err, context.DeadlineExceeded):
		code = int(tri.CodeDeadlineExceeded)
	}
	s.noteCode(tag, code, dl)
}

func (s *PeerServer) noteCode(tag string, code int, dl int64) {
	if tag == "" {
		return
	}
	now := time.Now().UnixNano()
	s.mu.Lock()
	s.records[tag] = record{code, now, dl}
	s.cond.Broadcast()
	s.mu.Unlock()
}

// report waits up to wait for the record of tag.
func (s *PeerServer) report(tag string, wait time.Duration) (record, bool) {
	deadline := time.Now().Add(wait)
	t := time.AfterFunc(wait, func() { s.mu.Lock(); s.cond.Broadcast(); s.mu.Unlock() })
	defer t.Stop()
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		if r, ok := s.records[tag]; ok {
			return r, true
		}
		if !time.Now().Before(deadline) {
			return record{}, false
		}
		s.cond.Wait()
	}
}

func (s *PeerServer) resp(payload string, index int32) *pb.PeerResponse {
	return &pb.PeerResponse{Payload: payload, Index: index, ServedBy: "dubbo-go",
		Group: s.group, Version: s.version}
}

// hold blocks until the call ends and records how.
func (s *PeerServer) hold(ctx context.Context, tag string) error {
	dl := deadlineMs(ctx)
	<-ctx.Done()
	s.note(tag, ctx.Err(), dl)
	return ctxError(ctx)
}

// ctxError: the status of a call whose context ended (a bare ctx.Err()
// would go out as UNKNOWN).
func ctxError(ctx context.Context) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return tri.NewError(tri.CodeDeadlineExceeded, ctx.Err())
	}
	return tri.NewError(tri.CodeCanceled, ctx.Err())
}

func (s *PeerServer) Unary(ctx context.Context, req *pb.PeerRequest) (*pb.PeerResponse, error) {
	if strings.HasPrefix(req.Payload, "report:") {
		wait := 2000 * time.Millisecond
		if req.SleepMs > 0 {
			wait = time.Duration(req.SleepMs) * time.Millisecond
		}
		r, ok := s.report(strings.TrimPrefix(req.Payload, "report:"), wait)
		if !ok {
			return nil, tri.NewError(tri.CodeNotFound, fmt.Errorf("no record of %q within %v", req.Payload, wait))
		}
		out := s.resp(codeName(r.code), int32(r.code))
		out.UnixNanos = r.nanos
		out.DeadlineMs = r.deadlineMs
		return out, nil
	}
	if req.Hold {
		return nil, s.hold(ctx, req.Tag)
	}
	if req.SleepMs > 0 {
		dl := deadlineMs(ctx)
		select {
		case <-time.After(time.Duration(req.SleepMs) * time.Millisecond):
		case <-ctx.Done():
			s.note(req.Tag, ctx.Err(), dl)
			return nil, ctxError(ctx)
		}
	}
	if req.Status != 0 {
		return nil, tri.NewError(tri.Code(req.Status), errors.New(req.Message))
	}
	out := s.resp(req.Payload, 0)
	out.Data = req.Data
	return out, nil
}

func (s *PeerServer) ServerStream(ctx context.Context, req *pb.PeerRequest, stream pb.PeerService_ServerStreamServer) error {
	for i := int32(0); i < req.Count; i++ {
		if err := stream.Send(s.resp(fmt.Sprintf("%s-%d", req.Payload, i), i)); err != nil {
			return err
		}
	}
	if req.Hold {
		return s.hold(ctx, req.Tag)
	}
	if req.Status != 0 {
		return tri.NewError(tri.Code(req.Status), errors.New(req.Message))
	}
	return nil
}

func (s *PeerServer) ClientStream(ctx context.Context, stream pb.PeerService_ClientStreamServer) (*pb.PeerResponse, error) {
	var parts []string
	for stream.Recv() {
		parts = append(parts, stream.Msg().Payload)
	}
	if err := stream.Err(); err != nil {
		return nil, err
	}
	return s.resp(strings.Join(parts, ","), int32(len(parts))), nil
}

func (s *PeerServer) Bidi(ctx context.Context, stream pb.PeerService_BidiServer) error {
	for i := int32(0); ; i++ {
		req, err := stream.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if err := stream.Send(s.resp(req.Payload, i)); err != nil {
			return err
		}
		if req.Hold {
			// Never close; the client sends nothing more, so Recv ends
			// only when the call does (reset, deadline).
			dl := deadlineMs(ctx)
			done := make(chan error, 1)
			go func() {
				for {
					if _, err := stream.Recv(); err != nil {
						if !errors.Is(err, io.EOF) { // half-closed: hold on
							done <- err
						}
						return
					}
				}
			}()
			select {
			case <-ctx.Done():
				s.note(req.Tag, ctx.Err(), dl)
				return ctxError(ctx)
			case err := <-done:
				if ctx.Err() != nil { // the same end, seen first by Recv
					s.note(req.Tag, ctx.Err(), dl)
				} else {
					s.noteCode(req.Tag, codeOf(err), dl)
				}
				return err
			}
		}
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func runServer(group, version string) int {
	port, err := freePort()
	if err != nil {
		fmt.Fprintln(os.Stderr, "dubbogo-peer server:", err)
		return 1
	}
	srv, err := server.NewServer(server.WithServerProtocol(
		protocol.WithTriple(), protocol.WithIp("127.0.0.1"), protocol.WithPort(port)))
	if err != nil {
		fmt.Fprintln(os.Stderr, "dubbogo-peer server:", err)
		return 1
	}
	var sopts []server.ServiceOption
	if group != "" {
		sopts = append(sopts, server.WithGroup(group))
	}
	if version != "" {
		sopts = append(sopts, server.WithVersion(version))
	}
	if err := pb.RegisterPeerServiceHandler(srv, NewPeerServer(group, version), sopts...); err != nil {
		fmt.Fprintln(os.Stderr, "dubbogo-peer server: register:", err)
		return 1
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve() }()
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	for i := 0; ; i++ { // up to 20 s for the listener
		select {
		case err := <-errc:
			fmt.Fprintln(os.Stderr, "dubbogo-peer server: serve:", err)
			return 1
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond); err == nil {
			c.Close()
			break
		}
		if i == 200 {
			fmt.Fprintln(os.Stderr, "dubbogo-peer server: not listening on", addr, "after 20 s")
			return 1
		}
		time.Sleep(100 * time.Millisecond)
	}
	fmt.Printf("listening on %s\n", addr)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	select {
	case <-sig:
		return 0
	case err := <-errc:
		fmt.Fprintln(os.Stderr, "dubbogo-peer server: serve:", err)
		return 1
	}
}

// ---------------------------------------------------------------- client

type peerClient struct {
	mode, addr, group, version, label string
	svc                               pb.PeerService // dubbo modes
	unary                             *tri.Client    // triple modes
	failures                          int
}

func (c *peerClient) pass(name, detail string) {
	if detail != "" {
		detail = " (" + detail + ")"
	}
	fmt.Printf("PASS %s%s%s\n", c.label, name, detail)
}

func (c *peerClient) fail(name, format string, args ...any) {
	fmt.Printf("FAIL %s%s: %s\n", c.label, name, fmt.Sprintf(format, args...))
	c.failures++
}

func (c *peerClient) triple() bool { return strings.HasPrefix(c.mode, "triple") }

func (c *peerClient) setup(group, version string) error {
	json := strings.HasSuffix(c.mode, "-json")
	if c.triple() {
		var hc *http.Client
		if strings.HasPrefix(c.mode, "triple-h1") {
			hc = &http.Client{Transport: &http.Transport{}}
		} else {
			hc = &http.Client{Transport: &http2.Transport{AllowHTTP: true,
				DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
					var d net.Dialer
					return d.DialContext(ctx, network, addr)
				}}}
		}
		opts := []tri.ClientOption{tri.WithTriple()}
		if json {
			opts = append(opts, tri.WithProtoJSON())
		}
		if group != "" {
			opts = append(opts, tri.WithGroup(group))
		}
		if version != "" {
			opts = append(opts, tri.WithVersion(version))
		}
		c.unary = tri.NewClient(hc, "http://"+c.addr+"/"+pb.PeerServiceName+"/Unary", opts...)
		return nil
	}
	copts := []client.ClientOption{client.WithClientURL("tri://" + c.addr),
		client.WithClientClusterFailFast(), client.WithClientRetries(0)}
	if json {
		copts = append(copts, client.WithClientSerializationJSON())
	}
	cli, err := client.NewClient(copts...)
	if err != nil {
		return err
	}
	var ropts []client.ReferenceOption
	if group != "" {
		ropts = append(ropts, client.WithGroup(group))
	}
	if version != "" {
		ropts = append(ropts, client.WithVersion(version))
	}
	c.svc, err = pb.NewPeerService(cli, ropts...)
	return err
}

func (c *peerClient) callUnary(ctx context.Context, req *pb.PeerRequest) (*pb.PeerResponse, error) {
	if c.unary != nil {
		out := new(pb.PeerResponse)
		err := c.unary.CallUnary(ctx, tri.NewRequest(req), tri.NewResponse(out))
		if err != nil {
			return nil, err
		}
		return out, nil
	}
	return c.svc.Unary(ctx, req)
}

func codeOf(err error) int {
	if err == nil {
		return 0
	}
	return int(tri.CodeOf(err))
}

func ctxMs(ms int) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), time.Duration(ms)*time.Millisecond)
}

var seq int

func (c *peerClient) tag(name string) string {
	seq++
	return fmt.Sprintf("dubbogo-%d-%s-%s-%d", os.Getpid(), c.mode, name, seq)
}

// serverReport asks the server how the call tagged tag ended.
func (c *peerClient) serverReport(tag string) (int, int64, int64, error) {
	ctx, cancel := ctxMs(5000)
	defer cancel()
	r, err := c.callUnary(ctx, &pb.PeerRequest{Payload: "report:" + tag, SleepMs: 2000})
	if err != nil {
		return 0, 0, 0, err
	}
	return int(r.Index), r.UnixNanos, r.DeadlineMs, nil
}

func (c *peerClient) caseUnary(name string) {
	ctx, cancel := ctxMs(5000)
	defer cancel()
	data := []byte{0, 1, 2, 0xff}
	r, err := c.callUnary(ctx, &pb.PeerRequest{Payload: "hello from dubbo-go", Data: data})
	switch {
	case err != nil:
		c.fail(name, "%s: %v", codeName(codeOf(err)), err)
	case r.Payload != "hello from dubbo-go" || string(r.Data) != string(data):
		c.fail(name, "echo mismatch: payload %q data %x", r.Payload, r.Data)
	case r.ServedBy == "":
		c.fail(name, "response has no served_by")
	default:
		c.pass(name, "served by "+r.ServedBy)
	}
}

func (c *peerClient) caseUnaryError(name string) {
	ctx, cancel := ctxMs(5000)
	defer cancel()
	_, err := c.callUnary(ctx, &pb.PeerRequest{Status: 7, Message: "peer says no"})
	var te *tri.Error
	switch {
	case err == nil:
		c.fail(name, "call succeeded; expected PERMISSION_DENIED")
	case codeOf(err) != 7:
		c.fail(name, "got %s (%v); expected PERMISSION_DENIED", codeName(codeOf(err)), err)
	case !errors.As(err, &te) || te.Message() != "peer says no":
		c.fail(name, "message %q; expected \"peer says no\"", err.Error())
	default:
		c.pass(name, "PERMISSION_DENIED \"peer says no\"")
	}
}

func (c *peerClient) caseServerStream(name string) {
	ctx, cancel := ctxMs(5000)
	defer cancel()
	st, err := c.svc.ServerStream(ctx, &pb.PeerRequest{Payload: "s", Count: 5})
	if err != nil {
		c.fail(name, "open: %v", err)
		return
	}
	n := int32(0)
	for st.Recv() {
		m := st.Msg()
		if m.Index != n || m.Payload != fmt.Sprintf("s-%d", n) {
			c.fail(name, "message %d: index %d payload %q", n, m.Index, m.Payload)
			return
		}
		n++
	}
	if err := st.Err(); err != nil {
		c.fail(name, "after %d messages: %s %v", n, codeName(codeOf(err)), err)
	} else if n != 5 {
		c.fail(name, "%d messages, expected 5", n)
	} else {
		c.pass(name, "5 messages, status OK")
	}
}

func (c *peerClient) caseClientStream(name string) {
	ctx, cancel := ctxMs(5000)
	defer cancel()
	st, err := c.svc.ClientStream(ctx)
	if err != nil {
		c.fail(name, "open: %v", err)
		return
	}
	for _, p := range []string{"a", "b", "c"} {
		if err := st.Send(&pb.PeerRequest{Payload: p}); err != nil {
			c.fail(name, "send %s: %v", p, err)
			return
		}
	}
	r, err := st.CloseAndRecv()
	switch {
	case err != nil:
		c.fail(name, "%s: %v", codeName(codeOf(err)), err)
	case r.Payload != "a,b,c" || r.Index != 3:
		c.fail(name, "got %q/%d, expected \"a,b,c\"/3", r.Payload, r.Index)
	default:
		c.pass(name, "3 messages in, \"a,b,c\" out")
	}
}

func (c *peerClient) caseBidi(name string) {
	ctx, cancel := ctxMs(5000)
	defer cancel()
	st, err := c.svc.Bidi(ctx)
	if err != nil {
		c.fail(name, "open: %v", err)
		return
	}
	for i, p := range []string{"x", "y", "z"} {
		if err := st.Send(&pb.PeerRequest{Payload: p}); err != nil {
			c.fail(name, "send %s: %v", p, err)
			return
		}
		r, err := st.Recv()
		if err != nil {
			c.fail(name, "recv %d: %s %v", i, codeName(codeOf(err)), err)
			return
		}
		if r.Payload != p || r.Index != int32(i) {
			c.fail(name, "echo %d: %q/%d", i, r.Payload, r.Index)
			return
		}
	}
	st.CloseRequest()
	if _, err := st.Recv(); !errors.Is(err, io.EOF) {
		c.fail(name, "after close: %v, expected EOF", err)
		return
	}
	st.CloseResponse()
	c.pass(name, "3 echoes in step, then EOF")
}

func (c *peerClient) caseGroupVersion(name string) {
	ctx, cancel := ctxMs(5000)
	defer cancel()
	r, err := c.callUnary(ctx, &pb.PeerRequest{Payload: "gv"})
	switch {
	case err != nil:
		c.fail(name, "%s: %v", codeName(codeOf(err)), err)
	case r.Group != c.group || r.Version != c.version:
		c.fail(name, "served by registration %q/%q, expected %q/%q", r.Group, r.Version, c.group, c.version)
	default:
		c.pass(name, fmt.Sprintf("group %q version %q", r.Group, r.Version))
	}
}

// caseGroupMismatch: the server serves only group/version; a call for
// another group must end UNIMPLEMENTED.
func (c *peerClient) caseGroupMismatch(name string) {
	other := &peerClient{mode: c.mode, addr: c.addr}
	if err := other.setup("no-such-group", c.version); err != nil {
		c.fail(name, "client setup: %v", err)
		return
	}
	ctx, cancel := ctxMs(5000)
	defer cancel()
	_, err := other.callUnary(ctx, &pb.PeerRequest{Payload: "gv"})
	if codeOf(err) != int(tri.CodeUnimplemented) {
		c.fail(name, "group no-such-group: got %s (%v), expected UNIMPLEMENTED", codeName(codeOf(err)), err)
		return
	}
	c.pass(name, "UNIMPLEMENTED: "+err.Error())
}

// caseDeadline: a 200 ms deadline on a call the server holds ends
// DEADLINE_EXCEEDED at the client within [200, 500) ms, and the server's
// handler sees its call end no earlier than the deadline: DEADLINE_EXCEEDED
// from its own timer (the timeout header), or CANCELLED when the client's
// reset at the client's deadline arrives first (the two race by design,
// microseconds apart on loopback).
func (c *peerClient) caseDeadline(name string) {
	tag := c.tag(name)
	// t0 before the deadline is set: the call cannot end before t0 +
	// 200 ms.  (Taken after it, a goroutine descheduled in between made
	// a correct end at the deadline read as 199.3 ms on a loaded CI.)
	t0 := time.Now()
	ctx, cancel := ctxMs(200)
	defer cancel()
	_, err := c.callUnary(ctx, &pb.PeerRequest{Hold: true, Tag: tag})
	el := time.Since(t0)
	note := ""
	if codeOf(err) != int(tri.CodeDeadlineExceeded) {
		// dubbo-go v3.3.1 labels its own deadline INVALID_ARGUMENT
		// "protocol error: incomplete envelope: context deadline
		// exceeded" when it strikes while the client reads the body
		// (seen under ThreadSanitizer, where our server answers the
		// deadline in two frames): the deadline fired here all the same.
		if err == nil || !(errors.Is(err, context.DeadlineExceeded) ||
			strings.Contains(err.Error(), "context deadline exceeded")) {
			c.fail(name, "client got %s (%v) after %v, expected DEADLINE_EXCEEDED", codeName(codeOf(err)), err, el)
			return
		}
		note = fmt.Sprintf(" [dubbo-go labelled it %s: %v]", codeName(codeOf(err)), err)
	}
	if el < 200*time.Millisecond || el >= 500*time.Millisecond {
		c.fail(name, "DEADLINE_EXCEEDED after %v, outside [200, 500) ms", el)
		return
	}
	code, at, dl, rerr := c.serverReport(tag)
	if rerr != nil {
		c.fail(name, "client DEADLINE_EXCEEDED after %v; server report: %v", el, rerr)
		return
	}
	sel := time.Duration(at - t0.UnixNano())
	switch {
	case dl < 0 || dl > 200:
		c.fail(name, "client DEADLINE_EXCEEDED after %v, but the server's handler saw deadline %d ms (-1: none) at its start: the timeout did not reach it", el, dl)
	case code != int(tri.CodeDeadlineExceeded) && code != int(tri.CodeCanceled):
		c.fail(name, "server's handler saw %s", codeName(code))
	case sel < 195*time.Millisecond || sel >= 500*time.Millisecond:
		c.fail(name, "server's handler saw %s %v after the call started, outside [195, 500) ms", codeName(code), sel)
	default:
		c.pass(name, fmt.Sprintf("client DEADLINE_EXCEEDED after %v; server's handler had %d ms left at its start and saw %s after %v%s",
			el.Round(100*time.Microsecond), dl, codeName(code), sel.Round(100*time.Microsecond), note))
	}
}

// caseCancel: the server holds a server-streaming call after its first
// message; the client cancels its context; the server's handler must see
// CANCELLED within bound.
//
// Why server streaming: dubbo-go v3.3.1 (x/net/http2 v0.28.0) writes no
// RST_STREAM when the context of a stream whose request side is still
// open is cancelled (the transport is blocked reading the request body),
// and its CloseResponse reads the stream to its end instead of resetting
// it: observed with GODEBUG=http2debug=2, the held bidi stream then ends
// only at its deadline.  caseCancelBidi closes the request side first.
func (c *peerClient) caseCancel(name string, bound time.Duration) {
	tag := c.tag(name)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := c.svc.ServerStream(ctx, &pb.PeerRequest{Payload: "hold", Count: 1, Hold: true, Tag: tag})
	if err != nil {
		c.fail(name, "open: %v", err)
		return
	}
	if !st.Recv() {
		c.fail(name, "recv of the first message: %v", st.Err())
		return
	}
	tc := time.Now().UnixNano()
	cancel()
	c.checkCancel(name, tag, tc, bound)
}

// caseCancelBidi: the server holds a bidi stream after echoing; the
// client half-closes and cancels (see caseCancel for why both).
func (c *peerClient) caseCancelBidi(name string, bound time.Duration) {
	tag := c.tag(name)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := c.svc.Bidi(ctx)
	if err != nil {
		c.fail(name, "open: %v", err)
		return
	}
	if err := st.Send(&pb.PeerRequest{Payload: "hold", Hold: true, Tag: tag}); err != nil {
		c.fail(name, "send: %v", err)
		return
	}
	if _, err := st.Recv(); err != nil {
		c.fail(name, "recv of the echo: %v", err)
		return
	}
	st.CloseRequest()
	tc := time.Now().UnixNano()
	cancel()
	c.checkCancel(name, tag, tc, bound)
}

func (c *peerClient) checkCancel(name, tag string, tc int64, bound time.Duration) {
	code, at, _, rerr := c.serverReport(tag)
	if rerr != nil {
		c.fail(name, "server report: %v", rerr)
		return
	}
	lat := time.Duration(at - tc)
	if code != int(tri.CodeCanceled) {
		c.fail(name, "server's handler saw %s, expected CANCELLED", codeName(code))
	} else if lat >= bound {
		c.fail(name, "server's handler saw CANCELLED %v after the cancel, bound %v", lat, bound)
	} else {
		c.pass(name, fmt.Sprintf("server's handler saw CANCELLED %v after the cancel (bound %v)", lat.Round(10*time.Microsecond), bound))
	}
}

func runClient(args []string) int {
	fs := flag.NewFlagSet("client", flag.ExitOnError)
	addr := fs.String("addr", "", "server host:port")
	mode := fs.String("mode", "dubbo", "dubbo, dubbo-json, triple, triple-json, triple-h1, triple-h1-json")
	group := fs.String("group", "", "service group")
	version := fs.String("version", "", "service version")
	cases := fs.String("cases", "", "comma-separated cases (default: all for the mode)")
	label := fs.String("label", "", "prefix of the case names")
	cancelBound := fs.Duration("cancel_bound", 100*time.Millisecond, "bound of the server's cancel latency")
	fs.Parse(args)
	c := &peerClient{mode: *mode, addr: *addr, group: *group, version: *version, label: *label}
	if err := c.setup(*group, *version); err != nil {
		fmt.Printf("FAIL %ssetup: %v\n", c.label, err)
		return 1
	}
	list := *cases
	if list == "" {
		if strings.HasPrefix(c.mode, "triple-h1") {
			// No deadline case over HTTP/1.1: dubbo-go's own client
			// reports its expired deadline there as UNKNOWN "context
			// deadline exceeded", whatever the server does.
			list = "unary,unary_error"
		} else if c.triple() {
			list = "unary,unary_error,deadline"
		} else {
			list = "unary,unary_error,server_stream,client_stream,bidi,deadline,cancel,cancel_bidi"
		}
		if *group != "" || *version != "" {
			list += ",group_version,group_mismatch"
		}
	}
	for _, name := range strings.Split(list, ",") {
		switch name {
		case "unary":
			c.caseUnary(name)
		case "unary_error":
			c.caseUnaryError(name)
		case "server_stream":
			c.caseServerStream(name)
		case "client_stream":
			c.caseClientStream(name)
		case "bidi":
			c.caseBidi(name)
		case "deadline":
			c.caseDeadline(name)
		case "cancel":
			c.caseCancel(name, *cancelBound)
		case "cancel_bidi":
			c.caseCancelBidi(name, *cancelBound)
		case "group_version":
			c.caseGroupVersion(name)
		case "group_mismatch":
			c.caseGroupMismatch(name)
		default:
			c.fail(name, "unknown case")
		}
	}
	if c.failures > 125 {
		return 125
	}
	return c.failures
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: dubbogo-peer server [--group=G --version=V] | client --addr=H:P --mode=M ...")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "server":
		fs := flag.NewFlagSet("server", flag.ExitOnError)
		group := fs.String("group", "", "service group")
		version := fs.String("version", "", "service version")
		fs.Parse(os.Args[2:])
		os.Exit(runServer(*group, *version))
	case "client":
		os.Exit(runClient(os.Args[2:]))
	default:
		fmt.Fprintln(os.Stderr, "dubbogo-peer: unknown mode", os.Args[1])
		os.Exit(2)
	}
}
