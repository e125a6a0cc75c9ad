// Package cli holds the client side of petrel's commands: it dials the
// daemon's socket and renders what it answers as tables or JSON. It owns no
// state and never changes the daemon.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	petrelpb "github.com/petrel-net/petrel/proto"
)

// ErrNoDaemon is returned when nothing answers on the socket.
var ErrNoDaemon = errors.New("no petrel daemon answering")

// Client talks to one daemon.
type Client struct {
	petrelpb.PetrelClient
	conn   *grpc.ClientConn
	socket string
}

// Dial connects to the daemon at socket and checks that it answers, so
// that commands fail with one clear sentence instead of a gRPC error.
func Dial(ctx context.Context, socket string) (*Client, error) {
	conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("socket %s: %w", socket, err)
	}
	c := &Client{PetrelClient: petrelpb.NewPetrelClient(conn), conn: conn, socket: socket}
	pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if _, err := c.GetInfo(pctx, &petrelpb.GetInfoRequest{}); err != nil {
		conn.Close()
		return nil, c.explain(err)
	}
	return c, nil
}

// Close releases the connection.
func (c *Client) Close() error { return c.conn.Close() }

func (c *Client) explain(err error) error {
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded:
		return fmt.Errorf("%w on %s (is `petrel daemon` running? use --socket to point elsewhere)", ErrNoDaemon, c.socket)
	case codes.PermissionDenied:
		return fmt.Errorf("socket %s: permission denied (the socket is mode 0600: run as the daemon's user, usually root)", c.socket)
	}
	return err
}

// Routes collects the whole streamed RIB (only prefixes inside within, when
// set).
func (c *Client) Routes(ctx context.Context, within string) ([]*petrelpb.Route, error) {
	stream, err := c.ListRoutes(ctx, &petrelpb.ListRoutesRequest{Within: within})
	if err != nil {
		return nil, err
	}
	var routes []*petrelpb.Route
	for {
		batch, err := stream.Recv()
		if err == io.EOF {
			return routes, nil
		}
		if err != nil {
			return nil, err
		}
		routes = append(routes, batch.Routes...)
	}
}
