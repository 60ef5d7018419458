package conns

import (
	"io"
	"net"
	"testing"
)

// A PrefixConn keeps the interfaces the relay needs: io.Copy between TCP
// conns splices through WriteTo and ReadFrom, and half-close passes on.
func TestPrefixConnKeepsRelayInterfaces(t *testing.T) {
	var pc net.Conn = &PrefixConn{}
	if _, ok := pc.(io.WriterTo); !ok {
		t.Error("PrefixConn hides WriteTo: the relay could not splice after its prefix")
	}
	if _, ok := pc.(io.ReaderFrom); !ok {
		t.Error("PrefixConn hides ReadFrom")
	}
	if _, ok := pc.(interface{ CloseWrite() error }); !ok {
		t.Error("PrefixConn hides CloseWrite")
	}
}
