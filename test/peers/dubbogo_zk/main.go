// dubbogo-zk-peer: a dubbo-go v3.3.1 provider and consumer that find each
// other (and libtriplestream) through Dubbo's ZooKeeper registry with
// interface-level registration, for test/peers/run_dubbogo_zk.sh.
//
//	dubbogo-zk-peer provider --zk=HOST:PORT
//	    serves tri.zk.v1.EchoService (Unary, Bidi) with dubbo-go's Triple
//	    protocol on 127.0.0.1, registers it in ZooKeeper, prints
//	    "listening on 127.0.0.1:PORT", exits on SIGTERM/SIGINT.
//	dubbogo-zk-peer consumer --zk=HOST:PORT
//	    finds a provider of tri.zk.v1.EchoService in ZooKeeper (retrying
//	    for up to 30 s), calls Unary and Bidi, prints "PASS unary ...",
//	    "PASS bidi ..." or "FAIL ...: why"; exit status = failures.
//
// Messages are google.protobuf.StringValue, so the libtriplestream side
// can answer with a byte echo.  The service bindings are written by hand
// in the shape dubbo-go's generator gives (see its protocol/triple/health
// package).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"dubbo.apache.org/dubbo-go/v3"
	"dubbo.apache.org/dubbo-go/v3/client"
	"dubbo.apache.org/dubbo-go/v3/common/constant"
	_ "dubbo.apache.org/dubbo-go/v3/imports"
	"dubbo.apache.org/dubbo-go/v3/protocol"
	tri "dubbo.apache.org/dubbo-go/v3/protocol/triple/triple_protocol"
	"dubbo.apache.org/dubbo-go/v3/registry"
	"dubbo.apache.org/dubbo-go/v3/server"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

const serviceName = "tri.zk.v1.EchoService"

// ---- provider ----

type echoHandler interface {
	Unary(context.Context, *wrapperspb.StringValue) (*wrapperspb.StringValue, error)
	Bidi(context.Context, *tri.BidiStream) error
}

type EchoImpl struct{}

func (EchoImpl) Unary(_ context.Context, in *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
	return wrapperspb.String("go:" + in.GetValue()), nil
}

func (EchoImpl) Bidi(_ context.Context, s *tri.BidiStream) error {
	for {
		in := new(wrapperspb.StringValue)
		if err := s.Receive(in); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if err := s.Send(wrapperspb.String("go:" + in.GetValue())); err != nil {
			return err
		}
	}
}

var serviceInfo = server.ServiceInfo{
	InterfaceName: serviceName,
	ServiceType:   (*echoHandler)(nil),
	Methods: []server.MethodInfo{
		{
			Name:        "Unary",
			Type:        constant.CallUnary,
			ReqInitFunc: func() any { return new(wrapperspb.StringValue) },
			MethodFunc: func(ctx context.Context, args []any, h any) (any, error) {
				res, err := h.(echoHandler).Unary(ctx, args[0].(*wrapperspb.StringValue))
				if err != nil {
					return nil, err
				}
				return tri.NewResponse(res), nil
			},
		},
		{
			Name:           "Bidi",
			Type:           constant.CallBidiStream,
			StreamInitFunc: func(base any) any { return base.(*tri.BidiStream) },
			MethodFunc: func(ctx context.Context, args []any, h any) (any, error) {
				return nil, h.(echoHandler).Bidi(ctx, args[0].(*tri.BidiStream))
			},
		},
	},
}

func newInstance(zk string, port int) (*dubbo.Instance, error) {
	opts := []dubbo.InstanceOption{
		dubbo.WithName("dubbogo-zk-peer"),
		dubbo.WithRegistry(
			registry.WithZookeeper(),
			registry.WithAddress(zk),
			registry.WithRegisterInterface(),
			registry.WithTimeout(10*time.Second),
		),
	}
	if port > 0 {
		opts = append(opts, dubbo.WithProtocol(
			protocol.WithTriple(),
			protocol.WithIp("127.0.0.1"),
			protocol.WithPort(port),
		))
	}
	return dubbo.NewInstance(opts...)
}

func runProvider(zk string, port int) int {
	ins, err := newInstance(zk, port)
	if err != nil {
		fmt.Println("FAIL provider:", err)
		return 1
	}
	srv, err := ins.NewServer()
	if err != nil {
		fmt.Println("FAIL provider:", err)
		return 1
	}
	if err := srv.Register(EchoImpl{}, &serviceInfo); err != nil {
		fmt.Println("FAIL provider register:", err)
		return 1
	}
	go func() {
		if err := srv.Serve(); err != nil {
			fmt.Println("FAIL provider serve:", err)
			os.Exit(1)
		}
	}()
	fmt.Printf("listening on 127.0.0.1:%d\n", port)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	return 0
}

// ---- consumer ----

type echoClient struct{ conn *client.Connection }

var clientInfo = client.ClientInfo{
	InterfaceName: serviceName,
	MethodNames:   []string{"Unary", "Bidi"},
	ConnectionInjectFunc: func(raw any, conn *client.Connection) {
		raw.(*echoClient).conn = conn
	},
}

func runConsumer(zk string) int {
	ins, err := newInstance(zk, 0)
	if err != nil {
		fmt.Println("FAIL consumer:", err)
		return 1
	}
	cli, err := ins.NewClient(client.WithClientProtocolTriple())
	if err != nil {
		fmt.Println("FAIL consumer:", err)
		return 1
	}
	conn, err := cli.DialWithInfo(serviceName, &clientInfo)
	if err != nil {
		fmt.Println("FAIL consumer dial:", err)
		return 1
	}
	c := &echoClient{conn: conn}
	fails := 0

	// The provider list arrives asynchronously: retry the first call.
	var resp *wrapperspb.StringValue
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		resp = new(wrapperspb.StringValue)
		err = c.conn.CallUnary(ctx, []any{wrapperspb.String("hello")}, resp, "Unary")
		cancel()
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		fmt.Println("FAIL unary:", err)
		fails++
	} else {
		fmt.Printf("PASS unary %q\n", resp.GetValue())
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := c.conn.CallBidiStream(ctx, "Bidi")
	if err != nil {
		fmt.Println("FAIL bidi:", err)
		return fails + 1
	}
	bs := st.(*tri.BidiStreamForClient)
	got := ""
	for _, m := range []string{"a", "b", "c"} {
		if err := bs.Send(wrapperspb.String(m)); err != nil {
			fmt.Println("FAIL bidi send:", err)
			return fails + 1
		}
		in := new(wrapperspb.StringValue)
		if err := bs.Receive(in); err != nil {
			fmt.Println("FAIL bidi receive:", err)
			return fails + 1
		}
		got += in.GetValue() + ";"
	}
	bs.CloseRequest()
	in := new(wrapperspb.StringValue)
	if err := bs.Receive(in); !errors.Is(err, io.EOF) {
		fmt.Println("FAIL bidi end:", err)
		return fails + 1
	}
	bs.CloseResponse()
	fmt.Printf("PASS bidi %q\n", got)
	return fails
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: dubbogo-zk-peer provider|consumer --zk=HOST:PORT [--port=N]")
		os.Exit(2)
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	zk := fs.String("zk", "127.0.0.1:2181", "ZooKeeper address")
	port := fs.Int("port", 0, "provider port")
	fs.Parse(os.Args[2:])
	switch os.Args[1] {
	case "provider":
		os.Exit(runProvider(*zk, *port))
	case "consumer":
		os.Exit(runConsumer(*zk))
	default:
		fmt.Fprintln(os.Stderr, "unknown mode", os.Args[1])
		os.Exit(2)
	}
}
