package configs

import (
	"os"
	"strings"
	"testing"
)

// FuzzParse: any file either loads, or is refused with an error that
// names the file; it never panics, and a loaded config survives the
// flag overrides cmd/veilchain applies to its first listener and chains.
func FuzzParse(f *testing.F) {
	for _, name := range []string{"example.yaml", "default.yaml", "testdata/bad-listener.yaml", "testdata/direct.yaml"} {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("fuzz.yaml", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.yaml") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		if len(c.Listeners) == 0 || c.Listeners[0].Socks == "" || c.Listeners[0].Chain == "" {
			t.Fatalf("accepted a config without a usable first listener: %+v", c.Listeners)
		}
		c.Where("chains", c.Listeners[0].Chain, "hops", 0)
	})
}
