package policy

import (
	"bufio"
	"fmt"
	"net/netip"
	"os"
	"strings"
)

// BlockList is a set of names (each blocking itself and every name under
// it) and address ranges, read from files.
type BlockList struct {
	names    map[string]bool
	prefixes []netip.Prefix
}

// LoadBlockLists reads files of one entry a line: a name, an address, a
// CIDR, or a hosts-file line ("0.0.0.0 ads.example" blocks the names).
// '#' starts a comment. Errors name the file and line.
func LoadBlockLists(paths ...string) (*BlockList, error) {
	b := &BlockList{names: map[string]bool{}}
	for _, p := range paths {
		if err := b.load(p); err != nil {
			return nil, err
		}
	}
	return b, nil
}

func (b *BlockList) load(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		if _, err := netip.ParseAddr(fields[0]); err == nil && len(fields) > 1 {
			fields = fields[1:] // hosts-file line: the address is where names were sent
		} else if len(fields) > 1 {
			return fmt.Errorf("%s:%d: want one name, address or CIDR, or a hosts-file line", path, n)
		}
		for _, f := range fields {
			if err := b.add(f); err != nil {
				return fmt.Errorf("%s:%d: %w", path, n, err)
			}
		}
	}
	return sc.Err()
}

func (b *BlockList) add(entry string) error {
	if p, err := netip.ParsePrefix(entry); err == nil {
		b.prefixes = append(b.prefixes, p.Masked())
		return nil
	}
	if ip, err := netip.ParseAddr(entry); err == nil {
		b.prefixes = append(b.prefixes, netip.PrefixFrom(ip.Unmap(), ip.Unmap().BitLen()))
		return nil
	}
	name, err := CanonicalName(entry)
	if err != nil {
		return err
	}
	if !hostName(name) {
		hint := ""
		if strings.HasPrefix(name, "*.") {
			hint = " (write the name alone: it covers its subdomains)"
		}
		return fmt.Errorf("%q is not a host name, an address or a CIDR%s", entry, hint)
	}
	b.names[name] = true
	return nil
}

// hostName says whether name (canonical) is made of DNS labels: letters,
// digits, '-' and '_', none empty or longer than 63, not starting or ending
// with '-'. A line that is not, a URL or a glob, is a mistake to report,
// not an entry that can never match.
func hostName(name string) bool {
	if name == "" || len(name) > 253 {
		return false
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return false
			}
		}
	}
	return true
}

// Len is the number of entries.
func (b *BlockList) Len() int { return len(b.names) + len(b.prefixes) }

func (b *BlockList) blocks(d dest) bool {
	if d.ip.IsValid() {
		for _, p := range b.prefixes {
			if p.Contains(d.ip) {
				return true
			}
		}
		return false
	}
	for name := d.name; name != ""; {
		if b.names[name] {
			return true
		}
		_, parent, ok := strings.Cut(name, ".")
		if !ok {
			break
		}
		name = parent
	}
	return false
}
