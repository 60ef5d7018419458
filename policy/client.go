// Package policy decides, per connection, which chain carries it or
// whether it is refused. Its Router is a Dialer in front of the chains;
// it matches names as names and never resolves one to decide.
package policy

import (
	"context"

	"github.com/veilchain/veilchain/chain"
)

// Client is who asked for a connection: the listener it came in on and
// the user it authenticated as (empty when the listener has no auth).
type Client struct {
	Listener string
	User     string
}

type clientKey struct{}

// WithClient returns ctx carrying c, for the Router to match rules on,
// and for the chain's hops that isolate streams by listener or user.
func WithClient(ctx context.Context, c Client) context.Context {
	ctx = chain.WithOrigin(ctx, chain.Origin{Listener: c.Listener, User: c.User})
	return context.WithValue(ctx, clientKey{}, c)
}

// ClientFrom returns the Client in ctx, or the zero Client.
func ClientFrom(ctx context.Context) Client {
	c, _ := ctx.Value(clientKey{}).(Client)
	return c
}
