package httpproxy

import (
	"net/http"
	"net/url"
	"testing"
)

func BenchmarkHeaderClean(b *testing.B) {
	target, _ := url.Parse("http://dest.example/")
	in := http.Header{
		"User-Agent": {"Mozilla/5.0"}, "Accept": {"*/*"}, "Accept-Language": {"en"}, "Cookie": {"a=b"},
		"X-Forwarded-For": {"192.0.2.1"}, "Via": {"1.1 p"}, "Connection": {"keep-alive"}, "Referer": {"https://other.example/x"},
	}
	p := &HeaderPolicy{}
	b.ReportAllocs()
	for b.Loop() {
		h := make(http.Header, len(in))
		for k, v := range in {
			h[k] = v
		}
		p.Clean(h, target)
	}
}
