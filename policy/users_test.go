package policy

import (
	"log/slog"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/veilchain/veilchain/internal/testnet"
)

// Loading the package makes no bcrypt hash: that cost 70-185 ms at every
// start of the binary, --help included. The test runs its own binary
// again with GODEBUG=inittrace=1, which reports each package's init time
// and allocations. A bcrypt hash allocates its Blowfish state, 4168
// bytes, so an init that allocates less made none; the time is in the
// message.
func TestPackageInitMakesNoHash(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the test binary again")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "GODEBUG=inittrace=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("running %s again: %v\n%s", os.Args[0], err, out)
	}
	m := regexp.MustCompile(`init github.com/veilchain/veilchain/policy @\S+ ms, (\S+) ms clock, (\d+) bytes`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no init trace for this package in:\n%s", out)
	}
	if n, _ := strconv.Atoi(string(m[2])); n >= 4168 {
		t.Errorf("the package's init allocated %d bytes and took %s ms: it makes a bcrypt hash", n, m[1])
	}
}

// The hash compared against for unknown users is made on first use, once.
func TestDummyHashOnFirstUse(t *testing.T) {
	u, err := NewUsers(map[string]string{})
	if err != nil {
		t.Fatal(err)
	}
	if u.Authenticate("192.0.2.1:1", "nobody", "x") {
		t.Fatal("an unknown user was let in")
	}
	h := dummyHash()
	if len(h) == 0 || &h[0] != &dummyHash()[0] {
		t.Fatal("the dummy hash is missing or made again")
	}
}

// A lockout is logged once, at info, with the source and the user name it
// tried, and never the password.
func TestLockoutIsLogged(t *testing.T) {
	hash, _ := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	u, err := NewUsers(map[string]string{"alice": string(hash)})
	if err != nil {
		t.Fatal(err)
	}
	var logs testnet.LogBuffer
	u.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	for range 8 {
		u.Authenticate("198.51.100.9:1", "alice", "guess-me-not")
	}
	out := logs.String()
	if strings.Count(out, "login locked out") != 1 || !strings.Contains(out, "source=198.51.100.9") || !strings.Contains(out, "user=alice") || !strings.Contains(out, "level=INFO") {
		t.Fatalf("log %q: want one info line naming the source and user", out)
	}
	if strings.Contains(out, "guess-me-not") {
		t.Fatalf("the password is in the log: %q", out)
	}
}

// A block-list line that is not a name, an address or a CIDR (a URL, a
// glob) is an error naming its line, not an entry that never matches.
func TestBlockListRefusesMalformedLines(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct{ line, want string }{
		{"http://ads.example", `:2: "http://ads.example" is not a host name`},
		{"*.ads.example", "covers its subdomains"},
		{"ads..example", `:2: "ads..example" is not a host name`},
		{"10.0.0.0/33", `:2: "10.0.0.0/33" is not a host name, an address or a CIDR`},
	} {
		file := dir + "/list"
		os.WriteFile(file, []byte("good.example\n"+tt.line+"\n"), 0o600)
		if _, err := LoadBlockLists(file); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: err = %v, want %q", tt.line, err, tt.want)
		}
	}
	os.WriteFile(dir+"/ok", []byte("# ads\nads.example\n0.0.0.0 tracker.example\n192.0.2.0/24\n_dmarc.example\n"), 0o600)
	if b, err := LoadBlockLists(dir + "/ok"); err != nil || b.Len() != 4 {
		t.Fatalf("good list: %v, %d entries", err, b.Len())
	}
}
