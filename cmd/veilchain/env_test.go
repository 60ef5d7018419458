package main

import (
	"strings"
	"testing"
)

// The lines per shell, for a listener with both front ends, with one, on
// an unspecified address, and with auth.
func TestEnvLines(t *testing.T) {
	for _, tt := range []struct {
		shell, socks, http string
		auth               bool
		want               []string
	}{
		{"sh", "127.0.0.1:1080", "127.0.0.1:8118", false, []string{"export ALL_PROXY='socks5h://127.0.0.1:1080'\n",
			"export all_proxy='socks5h://127.0.0.1:1080'\n", "export https_proxy='http://127.0.0.1:8118'\n",
			"export HTTP_PROXY='http://127.0.0.1:8118'\n", "export NO_PROXY=''\n", "export no_proxy=''\n"}},
		{"fish", "127.0.0.1:1080", "", false, []string{"set -gx ALL_PROXY 'socks5h://127.0.0.1:1080'\n",
			"set -gx http_proxy 'socks5h://127.0.0.1:1080'\n", "set -gx no_proxy ''\n"}},
		{"powershell", "", "[::1]:8118", false, []string{"$env:ALL_PROXY = 'http://[::1]:8118'\n", "$env:HTTPS_PROXY = 'http://[::1]:8118'\n", "$env:NO_PROXY = ''\n"}},
		{"cmd", "0.0.0.0:1080", "[::]:8118", false, []string{"REM veilchain", "set \"all_proxy=socks5h://127.0.0.1:1080\"\n",
			"set \"http_proxy=http://[::1]:8118\"\n", "set \"NO_PROXY=\"\n"}},
		{"sh", "127.0.0.1:1081", "", true, []string{"replace USER:PASSWORD", "export ALL_PROXY='socks5h://USER:PASSWORD@127.0.0.1:1081'\n"}},
	} {
		var out strings.Builder
		if err := writeEnv(&out, tt.shell, "app", tt.auth, tt.socks, tt.http); err != nil {
			t.Fatal(err)
		}
		for _, w := range tt.want {
			if !strings.Contains(out.String(), w) {
				t.Errorf("%s %s %s: printed\n%s\nwant %q in it", tt.shell, tt.socks, tt.http, out.String(), w)
			}
		}
		if n := strings.Count(out.String(), "\n"); n != 9+btoi(tt.auth) {
			t.Errorf("%s: %d lines, want 8 variables and the comments:\n%s", tt.shell, n, out.String())
		}
	}
	if _, err := runApp("env", "--shell", "tcsh"); err == nil || !strings.Contains(err.Error(), "want sh, fish, powershell or cmd") {
		t.Errorf("env --shell tcsh: err = %v", err)
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
