package httpproxy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"

	"golang.org/x/net/http/httpguts"
)

// Request-head errors, each with the status the client gets.
var (
	errMalformed   = &statusError{http.StatusBadRequest, "malformed request"}
	errSmuggling   = &statusError{http.StatusBadRequest, "request has both Content-Length and Transfer-Encoding"}
	errObsFold     = &statusError{http.StatusBadRequest, "obsolete header line folding"}
	errURITooLong  = &statusError{http.StatusRequestURITooLong, "request line too long"}
	errHeadTooLong = &statusError{http.StatusRequestHeaderFieldsTooLarge, "request headers too large"}
	errHeaderName  = &statusError{http.StatusBadRequest, "invalid header field name"}
	errHeaderValue = &statusError{http.StatusBadRequest, "invalid header field value"}
	errVersion     = &statusError{http.StatusHTTPVersionNotSupported, "only HTTP/1.0 and HTTP/1.1 are supported"}
)

type statusError struct {
	code int
	text string
}

func (e *statusError) Error() string { return e.text }

// readRequest reads one request from br. The head is read line by line
// under the size limits and checked for what net/http would quietly
// normalize: obs-fold and Content-Length beside Transfer-Encoding (request
// smuggling attempts are refused, not repaired). net/http's own parser
// then reads the head alone, and the body is framed here, straight from
// br, so nothing of the next request is read ahead and lost.
func readRequest(br *bufio.Reader, maxURI, maxHead int) (*http.Request, error) {
	var head bytes.Buffer
	var lengths, encodings, blanks int
	for lineNo := 0; ; lineNo++ {
		limit := maxHead - head.Len()
		if lineNo == 0 {
			limit = maxURI
		}
		line, err := readLine(br, limit)
		if err != nil {
			switch {
			case errors.Is(err, errLineTooLong) && lineNo == 0:
				return nil, errURITooLong
			case errors.Is(err, errLineTooLong):
				return nil, errHeadTooLong
			case lineNo == 0 && head.Len() == 0 && errors.Is(err, io.EOF):
				return nil, io.EOF // the client closed between requests
			}
			return nil, fmt.Errorf("%w: %w", errMalformed, err)
		}
		if lineNo == 0 && len(bytes.TrimRight(line, "\r\n")) == 0 && head.Len() == 0 {
			// RFC 9112 section 2.2: ignore an empty line or two before a
			// request line (left over from a client's previous body).
			if blanks++; blanks > 4 {
				return nil, errMalformed
			}
			lineNo = -1
			continue
		}
		head.Write(line)
		if head.Len() > maxHead {
			return nil, errHeadTooLong
		}
		if lineNo == 0 {
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			return nil, errObsFold
		}
		if len(bytes.TrimRight(line, "\r\n")) == 0 {
			break
		}
		name, _, _ := bytes.Cut(line, []byte(":"))
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			lengths++
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			encodings++
		}
	}
	if lengths > 0 && encodings > 0 {
		return nil, errSmuggling
	}
	req, err := http.ReadRequest(bufio.NewReaderSize(bytes.NewReader(head.Bytes()), head.Len()))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errMalformed, err)
	}
	if err := checkHead(req); err != nil {
		return nil, err
	}
	switch {
	case len(req.TransferEncoding) > 0: // net/http accepts only "chunked"
		req.Body = &chunkedBody{br: br, r: httputil.NewChunkedReader(br)}
	case req.ContentLength > 0:
		req.Body = &lengthBody{r: io.LimitedReader{R: br, N: req.ContentLength}}
	default:
		req.Body = http.NoBody
	}
	return req, nil
}

// checkHead refuses what net/http's parser lets through but a server must
// not: a version other than 1.0 and 1.1 (it would go out as 1.1), and
// header names that are not tokens ("X A", "Transfer-Encoding :") or
// values with control bytes, which the Transport would refuse only after
// the chain was dialled, as if the chain had failed.
func checkHead(req *http.Request) error {
	if req.ProtoMajor != 1 || req.ProtoMinor > 1 {
		return errVersion
	}
	for name, values := range req.Header {
		if !httpguts.ValidHeaderFieldName(name) {
			return fmt.Errorf("%w %q", errHeaderName, name)
		}
		for _, v := range values {
			if !httpguts.ValidHeaderFieldValue(v) {
				return fmt.Errorf("%w (%s)", errHeaderValue, name)
			}
		}
	}
	return nil
}

var errLineTooLong = errors.New("line too long")

// readLine returns one line, with its line ending, of at most limit bytes.
func readLine(br *bufio.Reader, limit int) ([]byte, error) {
	var line []byte
	for {
		frag, err := br.ReadSlice('\n')
		if len(line)+len(frag) > limit {
			return nil, errLineTooLong
		}
		line = append(line, frag...)
		if err == nil {
			return line, nil
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			if errors.Is(err, io.EOF) && len(line) > 0 {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
}

// lengthBody is a Content-Length body; ending early is an error.
type lengthBody struct{ r io.LimitedReader }

func (b *lengthBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if errors.Is(err, io.EOF) && b.r.N > 0 {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

func (b *lengthBody) Close() error { return nil }

// chunkedBody decodes a chunked body and, at its end, reads the trailer
// section too, so the next request starts where it should.
type chunkedBody struct {
	br   *bufio.Reader
	r    io.Reader
	done bool
}

func (b *chunkedBody) Read(p []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	n, err := b.r.Read(p)
	if errors.Is(err, io.EOF) {
		// Trailer fields (dropped: they are not forwarded), then CRLF.
		for total := 0; ; {
			line, lerr := readLine(b.br, 8<<10)
			if total += len(line); lerr == nil && total > 64<<10 {
				lerr = errors.New("too long")
			}
			if lerr != nil {
				return n, fmt.Errorf("chunked trailer: %w", lerr)
			}
			if len(bytes.TrimRight(line, "\r\n")) == 0 {
				break
			}
		}
		b.done = true
	}
	return n, err
}

func (b *chunkedBody) Close() error { return nil }
