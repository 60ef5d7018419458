package httpproxy

import (
	"net/http"
	"net/url"
	"reflect"
	"testing"
)

func TestHeaderPolicyClean(t *testing.T) {
	target, _ := url.Parse("http://dest.example/path")
	tests := []struct {
		name   string
		policy HeaderPolicy
		in     http.Header
		want   http.Header
		ws     bool
	}{
		{
			name: "identifying headers go, in any case and with underscores",
			in: http.Header{
				"X-Forwarded-For": {"192.0.2.1"}, "X-Forwarded-Host": {"a"}, "X-Forwarded-Proto": {"http"},
				"X-Forwarded-Port": {"80"}, "X-Forwarded-Server": {"p"}, "X-Forwarded-Anything": {"x"},
				"Forwarded": {"for=192.0.2.1"}, "Via": {"1.1 p"}, "X-Real-Ip": {"192.0.2.1"},
				"Client-Ip": {"1"}, "True-Client-Ip": {"1"}, "X-Client-Ip": {"1"}, "X-Originating-Ip": {"1"},
				"X-Remote-Ip": {"1"}, "X-Remote-Addr": {"1"}, "X-Cluster-Client-Ip": {"1"},
				"Cf-Connecting-Ip": {"1"}, "Fastly-Client-Ip": {"1"}, "X-Proxyuser-Ip": {"1"},
				"From": {"me@example.com"}, "X_forwarded_for": {"192.0.2.1"}, "x-real-ip": {"1"},
				"Accept": {"*/*"},
			},
			want: http.Header{"Accept": {"*/*"}},
		},
		{
			name: "hop-by-hop and Connection-named headers go",
			in: http.Header{
				"Connection": {"keep-alive, X-Secret", "close,  x-other "}, "X-Secret": {"s"}, "X-Other": {"o"},
				"Keep-Alive": {"timeout=5"}, "Proxy-Connection": {"keep-alive"}, "Proxy-Authorization": {"Basic eDp5"},
				"Proxy-Authenticate": {"Basic"}, "Te": {"trailers"}, "Trailer": {"X"}, "Upgrade": {"h2c"},
				"Transfer-Encoding": {"chunked"}, "Cookie": {"a=b"},
			},
			want: http.Header{"Cookie": {"a=b"}},
		},
		{
			name: "a WebSocket upgrade keeps exactly its upgrade headers",
			in:   http.Header{"Connection": {"keep-alive, Upgrade"}, "Upgrade": {"websocket"}, "Sec-Websocket-Key": {"k"}, "X-Forwarded-For": {"1"}},
			want: http.Header{"Connection": {"Upgrade"}, "Upgrade": {"websocket"}, "Sec-Websocket-Key": {"k"}},
			ws:   true,
		},
		{
			name: "Upgrade without Connection: upgrade is not an upgrade",
			in:   http.Header{"Upgrade": {"websocket"}},
			want: http.Header{},
		},
		{
			name:   "fixed User-Agent and Accept-Language, extra drops",
			policy: HeaderPolicy{UserAgent: "Mozilla/5.0", AcceptLanguage: "en-US,en;q=0.5", Drop: []string{"x-tracking", "DNT"}},
			in:     http.Header{"User-Agent": {"curl/8"}, "Accept-Language": {"de-CH"}, "X-Tracking": {"1"}, "Dnt": {"1"}},
			want:   http.Header{"User-Agent": {"Mozilla/5.0"}, "Accept-Language": {"en-US,en;q=0.5"}},
		},
		{
			name: "cross-origin Referer trimmed to its origin by default",
			in:   http.Header{"Referer": {"https://other.example/secret/page?q=1"}},
			want: http.Header{"Referer": {"https://other.example/"}},
		},
		{
			name: "same-origin Referer kept",
			in:   http.Header{"Referer": {"http://DEST.example:80/a?b"}},
			want: http.Header{"Referer": {"http://DEST.example:80/a?b"}},
		},
		{
			name:   "cross-origin Referer dropped",
			policy: HeaderPolicy{Referer: "drop"},
			in:     http.Header{"Referer": {"http://other.example/x"}},
			want:   http.Header{},
		},
		{
			name:   "Referer kept when told",
			policy: HeaderPolicy{Referer: "keep"},
			in:     http.Header{"Referer": {"http://other.example/x"}},
			want:   http.Header{"Referer": {"http://other.example/x"}},
		},
		{
			name: "repeated or unparseable Referer dropped",
			in:   http.Header{"Referer": {"http://a.example/", "http://b.example/"}},
			want: http.Header{},
		},
		{
			name: "nothing is added",
			in:   http.Header{},
			want: http.Header{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := tt.in.Clone()
			ws := tt.policy.Clean(h, target)
			if !reflect.DeepEqual(h, tt.want) || ws != tt.ws {
				t.Errorf("Clean(%v)\n got %v (websocket %v)\nwant %v (websocket %v)", tt.in, h, ws, tt.want, tt.ws)
			}
		})
	}
}
