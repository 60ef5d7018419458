package httpproxy

import (
	"bufio"
	"bytes"
	"io"
	"testing"

	"golang.org/x/net/http/httpguts"
)

// FuzzReadRequest feeds arbitrary bytes to the request reader: it must
// not panic; what it accepts has a head within the limits, no
// Content-Length beside Transfer-Encoding, only HTTP/1.0 and 1.1, header
// names that are tokens, and a body that ends exactly where its framing
// says, leaving the rest for the next request.
func FuzzReadRequest(f *testing.F) {
	for _, s := range []string{
		"GET http://a.example/ HTTP/1.1\r\nHost: a.example\r\n\r\n",
		"POST http://a.example/ HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET",
		"POST http://a.example/ HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-T: 1\r\n\r\nnext",
		"CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n",
		"\r\nGET http://a/ HTTP/1.0\r\n\r\n",
		"GET http://a/ HTTP/1.1\r\nX: a\r\n b\r\n\r\n",
		"POST http://a/ HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
		"POST http://a/ HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding : chunked\r\n\r\n",
		"GET http://a/ HTTP/9.9\r\nX A: b\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		br := bufio.NewReaderSize(bytes.NewReader(in), 64)
		req, err := readRequest(br, 256, 1024)
		if err != nil {
			return
		}
		// Check the accepted head independently of the reader: no folded
		// line, and not both framing headers.
		head := in
		for _, end := range []string{"\n\r\n", "\n\n"} {
			if i := bytes.Index(head, []byte(end)); i >= 0 {
				head = head[:i]
			}
		}
		var cl, te bool
		for i, line := range bytes.Split(head, []byte("\n")) {
			if i > 0 && len(line) > 0 && (line[0] == ' ' || line[0] == '\t') {
				t.Fatalf("accepted a folded header line in %q", in)
			}
			name, _, _ := bytes.Cut(line, []byte(":"))
			cl = cl || bytes.EqualFold(name, []byte("content-length"))
			te = te || bytes.EqualFold(name, []byte("transfer-encoding"))
		}
		if cl && te {
			t.Fatalf("accepted both Content-Length and Transfer-Encoding: %q", in)
		}
		if req.ProtoMajor != 1 || req.ProtoMinor > 1 {
			t.Fatalf("accepted version %s: %q", req.Proto, in)
		}
		for name := range req.Header {
			if !httpguts.ValidHeaderFieldName(name) {
				t.Fatalf("accepted header name %q: %q", name, in)
			}
		}
		body, err := io.ReadAll(req.Body)
		if err != nil {
			return
		}
		if req.ContentLength > 0 && int64(len(body)) != req.ContentLength {
			t.Fatalf("body of %d bytes for Content-Length %d", len(body), req.ContentLength)
		}
		// The body must start right after the head's blank line and
		// leave everything after its end unread.
		rest, _ := io.ReadAll(br)
		used := len(in) - len(rest)
		if req.ContentLength > 0 {
			head := in[:used-len(body)]
			if !bytes.HasSuffix(head, []byte("\n\n")) && !bytes.HasSuffix(head, []byte("\n\r\n")) ||
				!bytes.Equal(in[len(head):used], body) {
				t.Fatalf("body %q does not follow the head %q", body, head)
			}
		}
		if len(req.TransferEncoding) > 0 && !bytes.HasSuffix(in[:used], []byte("\n")) {
			t.Fatalf("chunked body did not end at a line end: %q", in[:used])
		}
	})
}
