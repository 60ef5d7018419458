package configs

import (
	"os"
	"testing"
)

// FuzzParse: any file either loads into a config that validates, or is
// refused with an error; it never panics.
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
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Parse accepted a config that does not validate: %v", err)
		}
	})
}
