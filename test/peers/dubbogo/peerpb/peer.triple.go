// Triple bindings of tri.peer.v1.PeerService for dubbo-go v3.3.1.
//
// Written by hand for libtriplestream's peer tests, in the shape that
// dubbo-go's generator (protoc-gen-go-triple) gives its output (compare
// protocol/triple/health/triple_health/health.triple.go inside the
// dubbo-go v3.3.1 module): the generator itself is not served by the Go
// module proxy here (github.com/dubbogo/protoc-gen-go-triple/v3: 403 for
// every version tried).  Regenerate by hand if peer.proto's service
// changes; the messages (peer.pb.go) are protoc-gen-go's output.

package peerpb

import (
	"context"
	"net/http"

	"dubbo.apache.org/dubbo-go/v3/client"
	"dubbo.apache.org/dubbo-go/v3/common/constant"
	"dubbo.apache.org/dubbo-go/v3/protocol/triple/triple_protocol"
	"dubbo.apache.org/dubbo-go/v3/server"
)

const _ = triple_protocol.IsAtLeastVersion0_1_0

const PeerServiceName = "tri.peer.v1.PeerService"

// PeerService is a client for tri.peer.v1.PeerService.
type PeerService interface {
	Unary(ctx context.Context, req *PeerRequest, opts ...client.CallOption) (*PeerResponse, error)
	ServerStream(ctx context.Context, req *PeerRequest, opts ...client.CallOption) (PeerService_ServerStreamClient, error)
	ClientStream(ctx context.Context, opts ...client.CallOption) (PeerService_ClientStreamClient, error)
	Bidi(ctx context.Context, opts ...client.CallOption) (PeerService_BidiClient, error)
}

// NewPeerService makes a client of tri.peer.v1.PeerService on cli.
func NewPeerService(cli *client.Client, opts ...client.ReferenceOption) (PeerService, error) {
	conn, err := cli.DialWithInfo(PeerServiceName, &PeerService_ClientInfo, opts...)
	if err != nil {
		return nil, err
	}
	return &PeerServiceImpl{conn: conn}, nil
}

// PeerServiceImpl implements PeerService.
type PeerServiceImpl struct {
	conn *client.Connection
}

func (c *PeerServiceImpl) Unary(ctx context.Context, req *PeerRequest, opts ...client.CallOption) (*PeerResponse, error) {
	resp := new(PeerResponse)
	if err := c.conn.CallUnary(ctx, []any{req}, resp, "Unary", opts...); err != nil {
		return nil, err
	}
	return resp, nil
}

func (c *PeerServiceImpl) ServerStream(ctx context.Context, req *PeerRequest, opts ...client.CallOption) (PeerService_ServerStreamClient, error) {
	stream, err := c.conn.CallServerStream(ctx, req, "ServerStream", opts...)
	if err != nil {
		return nil, err
	}
	return &PeerServiceServerStreamClient{stream.(*triple_protocol.ServerStreamForClient)}, nil
}

func (c *PeerServiceImpl) ClientStream(ctx context.Context, opts ...client.CallOption) (PeerService_ClientStreamClient, error) {
	stream, err := c.conn.CallClientStream(ctx, "ClientStream", opts...)
	if err != nil {
		return nil, err
	}
	return &PeerServiceClientStreamClient{stream.(*triple_protocol.ClientStreamForClient)}, nil
}

func (c *PeerServiceImpl) Bidi(ctx context.Context, opts ...client.CallOption) (PeerService_BidiClient, error) {
	stream, err := c.conn.CallBidiStream(ctx, "Bidi", opts...)
	if err != nil {
		return nil, err
	}
	return &PeerServiceBidiClient{stream.(*triple_protocol.BidiStreamForClient)}, nil
}

type PeerService_ServerStreamClient interface {
	Recv() bool
	ResponseHeader() http.Header
	ResponseTrailer() http.Header
	Msg() *PeerResponse
	Err() error
	Close() error
}

type PeerServiceServerStreamClient struct {
	*triple_protocol.ServerStreamForClient
}

func (cli *PeerServiceServerStreamClient) Recv() bool {
	return cli.ServerStreamForClient.Receive(new(PeerResponse))
}

func (cli *PeerServiceServerStreamClient) Msg() *PeerResponse {
	msg := cli.ServerStreamForClient.Msg()
	if msg == nil {
		return new(PeerResponse)
	}
	return msg.(*PeerResponse)
}

type PeerService_ClientStreamClient interface {
	Send(*PeerRequest) error
	CloseAndRecv() (*PeerResponse, error)
}

type PeerServiceClientStreamClient struct {
	*triple_protocol.ClientStreamForClient
}

func (cli *PeerServiceClientStreamClient) Send(msg *PeerRequest) error {
	return cli.ClientStreamForClient.Send(msg)
}

func (cli *PeerServiceClientStreamClient) CloseAndRecv() (*PeerResponse, error) {
	msg := new(PeerResponse)
	if err := cli.ClientStreamForClient.CloseAndReceive(triple_protocol.NewResponse(msg)); err != nil {
		return nil, err
	}
	return msg, nil
}

type PeerService_BidiClient interface {
	Send(*PeerRequest) error
	Recv() (*PeerResponse, error)
	CloseRequest() error
	CloseResponse() error
}

type PeerServiceBidiClient struct {
	*triple_protocol.BidiStreamForClient
}

func (cli *PeerServiceBidiClient) Send(msg *PeerRequest) error {
	return cli.BidiStreamForClient.Send(msg)
}

func (cli *PeerServiceBidiClient) Recv() (*PeerResponse, error) {
	msg := new(PeerResponse)
	if err := cli.BidiStreamForClient.Receive(msg); err != nil {
		return nil, err
	}
	return msg, nil
}

var PeerService_ClientInfo = client.ClientInfo{
	InterfaceName: PeerServiceName,
	MethodNames:   []string{"Unary", "ServerStream", "ClientStream", "Bidi"},
	ConnectionInjectFunc: func(dubboCliRaw any, conn *client.Connection) {
		dubboCliRaw.(*PeerServiceImpl).conn = conn
	},
}

// PeerServiceHandler is an implementation of tri.peer.v1.PeerService.
type PeerServiceHandler interface {
	Unary(context.Context, *PeerRequest) (*PeerResponse, error)
	ServerStream(context.Context, *PeerRequest, PeerService_ServerStreamServer) error
	ClientStream(context.Context, PeerService_ClientStreamServer) (*PeerResponse, error)
	Bidi(context.Context, PeerService_BidiServer) error
}

func RegisterPeerServiceHandler(srv *server.Server, hdlr PeerServiceHandler, opts ...server.ServiceOption) error {
	return srv.Register(hdlr, &PeerService_ServiceInfo, opts...)
}

type PeerService_ServerStreamServer interface {
	Send(*PeerResponse) error
	ResponseHeader() http.Header
	ResponseTrailer() http.Header
}

type PeerServiceServerStreamServer struct {
	*triple_protocol.ServerStream
}

func (g *PeerServiceServerStreamServer) Send(msg *PeerResponse) error {
	return g.ServerStream.Send(msg)
}

type PeerService_ClientStreamServer interface {
	Recv() bool
	Msg() *PeerRequest
	Err() error
}

type PeerServiceClientStreamServer struct {
	*triple_protocol.ClientStream
}

func (g *PeerServiceClientStreamServer) Recv() bool {
	return g.ClientStream.Receive(new(PeerRequest))
}

func (g *PeerServiceClientStreamServer) Msg() *PeerRequest {
	msg := g.ClientStream.Msg()
	if msg == nil {
		return new(PeerRequest)
	}
	return msg.(*PeerRequest)
}

type PeerService_BidiServer interface {
	Send(*PeerResponse) error
	Recv() (*PeerRequest, error)
}

type PeerServiceBidiServer struct {
	*triple_protocol.BidiStream
}

func (g *PeerServiceBidiServer) Send(msg *PeerResponse) error {
	return g.BidiStream.Send(msg)
}

func (g *PeerServiceBidiServer) Recv() (*PeerRequest, error) {
	msg := new(PeerRequest)
	if err := g.BidiStream.Receive(msg); err != nil {
		return nil, err
	}
	return msg, nil
}

var PeerService_ServiceInfo = server.ServiceInfo{
	InterfaceName: PeerServiceName,
	ServiceType:   (*PeerServiceHandler)(nil),
	Methods: []server.MethodInfo{
		{
			Name: "Unary",
			Type: constant.CallUnary,
			ReqInitFunc: func() any {
				return new(PeerRequest)
			},
			MethodFunc: func(ctx context.Context, args []any, handler any) (any, error) {
				res, err := handler.(PeerServiceHandler).Unary(ctx, args[0].(*PeerRequest))
				if err != nil {
					return nil, err
				}
				return triple_protocol.NewResponse(res), nil
			},
		},
		{
			Name: "ServerStream",
			Type: constant.CallServerStream,
			ReqInitFunc: func() any {
				return new(PeerRequest)
			},
			StreamInitFunc: func(baseStream any) any {
				return &PeerServiceServerStreamServer{baseStream.(*triple_protocol.ServerStream)}
			},
			MethodFunc: func(ctx context.Context, args []any, handler any) (any, error) {
				return nil, handler.(PeerServiceHandler).ServerStream(ctx, args[0].(*PeerRequest), args[1].(PeerService_ServerStreamServer))
			},
		},
		{
			Name: "ClientStream",
			Type: constant.CallClientStream,
			StreamInitFunc: func(baseStream any) any {
				return &PeerServiceClientStreamServer{baseStream.(*triple_protocol.ClientStream)}
			},
			MethodFunc: func(ctx context.Context, args []any, handler any) (any, error) {
				res, err := handler.(PeerServiceHandler).ClientStream(ctx, args[0].(PeerService_ClientStreamServer))
				if err != nil {
					return nil, err
				}
				return triple_protocol.NewResponse(res), nil
			},
		},
		{
			Name: "Bidi",
			Type: constant.CallBidiStream,
			StreamInitFunc: func(baseStream any) any {
				return &PeerServiceBidiServer{baseStream.(*triple_protocol.BidiStream)}
			},
			MethodFunc: func(ctx context.Context, args []any, handler any) (any, error) {
				return nil, handler.(PeerServiceHandler).Bidi(ctx, args[0].(PeerService_BidiServer))
			},
		},
	},
}
