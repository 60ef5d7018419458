package chain

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// CheckAddr checks a destination "host:port" that a client asked for,
// before anything dials it. An empty host or an unspecified address would
// make Go dial the local machine, and a name with bytes outside
// letters, digits, '-', '_' and '.' cannot be a DNS name (IDNs arrive in
// punycode) but could confuse an address parser further down the chain.
func CheckAddr(addr string) error {
	host, port, err := splitAddr(addr)
	if err != nil {
		return err
	}
	if port == 0 {
		return fmt.Errorf("%w: bad port 0", ErrBadAddress)
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if ip.IsUnspecified() || ip.Zone() != "" || ip.Unmap().Is4() && ip.Unmap().As4()[0] == 0 { // 0.0.0.0/8: "this network"
			return fmt.Errorf("%w: %s", ErrBadAddress, host)
		}
		return nil
	}
	if len(host) == 0 || len(host) > 255 {
		return fmt.Errorf("%w: name must be 1-255 bytes", ErrBadAddress)
	}
	for i := 0; i < len(host); i++ {
		c := host[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return fmt.Errorf("%w: byte 0x%02x in name", ErrBadAddress, c)
		}
	}
	// No top-level domain is numeric. A name like "127.1", "0" or
	// "0x7f000001" is an address in disguise, which some resolvers
	// (inet_aton) would turn into a local one.
	labels := strings.Split(strings.TrimSuffix(host, "."), ".")
	if last := strings.ToLower(labels[len(labels)-1]); isNumeric(last) || strings.HasPrefix(last, "0x") {
		return fmt.Errorf("%w: numeric name %q", ErrBadAddress, host)
	}
	return nil
}

// splitAddr splits "host:port" for a hop request; errors are ErrBadAddress.
func splitAddr(addr string) (host string, port uint16, err error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("%w: %v", ErrBadAddress, err)
	}
	p, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return "", 0, fmt.Errorf("%w: bad port %q", ErrBadAddress, portStr)
	}
	return host, uint16(p), nil
}

func isNumeric(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
