package chain

import (
	"errors"
	"strings"
	"testing"
)

func TestCheckAddr(t *testing.T) {
	for _, tt := range []struct {
		addr string
		ok   bool
	}{
		{"example.com:443", true}, {"a_b-c.example:1", true}, {"xn--bcher-kva.example:80", true},
		{"192.0.2.1:80", true}, {"[2001:db8::1]:443", true}, {strings.Repeat("a", 255) + ":1", true},
		{":80", false}, {"0.0.0.0:80", false}, {"0.0.0.1:80", false}, {"0.1.2.3:80", false}, {"[::ffff:0.0.0.1]:80", false}, {"[::]:80", false}, {"[fe80::1%eth0]:80", false},
		{"example.com:0", false}, {"example.com:65536", false}, {"example.com:http", false},
		{"example.com", false}, {"exa mple.com:80", false}, {"bücher.example:80", false},
		{"a/b:80", false}, {"0.0.0.0.:80", false}, {"127.1:80", false}, {"0:80", false},
		{"0x7f000001:80", false}, {"1.2.3.0x4:80", false}, {"10.0.0.1.:80", false}, {"1e100.net:80", true}, {"a@b:80", false}, {strings.Repeat("a", 256) + ":1", false},
	} {
		err := CheckAddr(tt.addr)
		if (err == nil) != tt.ok || (err != nil && !errors.Is(err, ErrBadAddress)) {
			t.Errorf("CheckAddr(%q) = %v, want ok=%v", tt.addr, err, tt.ok)
		}
	}
}
