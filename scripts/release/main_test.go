package main

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/veilchain/veilchain/internal/testnet"
)

// TestReleaseIsReproducible builds the release for this machine's
// platform twice: the second time from another clone, at another path
// (and, with VEILCHAIN_RELEASE_COLD=1, an empty build cache). The two
// SHA256SUMS must be byte for byte the same and match the archive; the
// archive holds the binary, the README and the platform's service files,
// sorted, owned by 0:0, dated the commit's time; the binary has none of
// the build's paths in it and `veilchain version` prints the version,
// the commit and the Go version.
func TestReleaseIsReproducible(t *testing.T) {
	target := runtime.GOOS + "/" + runtime.GOARCH
	if !slices.Contains(targets, target) {
		t.Skipf("%s is not a release target: its binary could not be run here", target)
	}
	if _, err := exec.LookPath("git"); err != nil {
		testnet.SkipOrFail(t, "git not installed: %v", err)
	}
	src, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	gitOut := func(args ...string) string {
		cmd := exec.Command("git", args...)
		cmd.Dir = src
		out, err := cmd.Output()
		if err != nil {
			testnet.SkipOrFail(t, "%s is not a git checkout (git %s: %v): a release builds a commit", src, args[0], err)
		}
		return strings.TrimSpace(string(out))
	}
	head, commitTime := gitOut("rev-parse", "HEAD"), gitOut("log", "-1", "--format=%ct")
	t.Setenv("SOURCE_DATE_EPOCH", "") // the commit's time, as a release without it uses
	os.Unsetenv("SOURCE_DATE_EPOCH")

	// The builds share the machine with timing-sensitive tests of other
	// packages (test/e2e's time to first byte): one compile at a time, at
	// the lowest priority where there is nice. Neither changes the output.
	var wrap []string
	if nice, err := exec.LookPath("nice"); err == nil {
		wrap = []string{nice, "-n", "19"}
	}
	// The second build is from another clone at another path; with
	// VEILCHAIN_RELEASE_COLD=1 (as .ci/run sets in a step of its own) also
	// with an empty build cache, so every package is compiled again (a
	// minute or more: too long to run beside the timing tests of test/e2e).
	cold := os.Getenv("VEILCHAIN_RELEASE_COLD") == "1"
	if !cold {
		t.Log("the second build may take compiled packages from the build cache; VEILCHAIN_RELEASE_COLD=1 compiles them again")
	}
	const version = "v0.0.0-test+repro"
	var sums [2][]byte
	var outs [2]string
	for i := range sums {
		outs[i] = t.TempDir()
		r := &release{Version: version, Targets: []string{target}, Src: src, Log: io.Discard, Wrap: wrap, Env: []string{"GOFLAGS=-p=1"}}
		if i == 1 && cold {
			r.Env = append(r.Env, "GOCACHE="+t.TempDir())
		}
		start := time.Now()
		if err := r.run(outs[i]); err != nil {
			t.Fatalf("build %d: %v", i+1, err)
		}
		t.Logf("build %d: %v", i+1, time.Since(start).Round(time.Second))
		if sums[i], err = os.ReadFile(filepath.Join(outs[i], version, "SHA256SUMS")); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(sums[0], sums[1]) {
		t.Fatalf("two builds of %s differ:\n%s\n%s", head, sums[0], sums[1])
	}

	goos, goarch, _ := strings.Cut(target, "/")
	base := fmt.Sprintf("veilchain_%s_%s_%s", version, goos, goarch)
	name := base + ".tar.gz"
	if goos == "windows" {
		name = base + ".zip"
	}
	archive, err := os.ReadFile(filepath.Join(outs[0], version, name))
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("%x  %s\n", sha256.Sum256(archive), name); string(sums[0]) != want {
		t.Fatalf("SHA256SUMS = %q, want %q", sums[0], want)
	}
	sec, _ := strconv.ParseInt(commitTime, 10, 64)
	entries := readArchive(t, name, archive)
	var names []string
	for _, e := range entries {
		names = append(names, e.name)
		if !e.time.Equal(time.Unix(sec, 0)) || e.uid != 0 || e.gid != 0 {
			t.Errorf("%s: time %v owner %d:%d, want the commit's time %v and 0:0", e.name, e.time, e.uid, e.gid, time.Unix(sec, 0).UTC())
		}
	}
	exe := "veilchain"
	if goos == "windows" {
		exe += ".exe"
	}
	want := []string{base + "/", base + "/README.md", base + "/" + exe}
	switch goos {
	case "linux":
		want = []string{base + "/", base + "/systemd/", base + "/README.md", base + "/systemd/veilchain-serve.service", base + "/systemd/veilchain.service", base + "/veilchain"}
	case "darwin":
		want = []string{base + "/", base + "/launchd/", base + "/README.md", base + "/launchd/org.veilchain.run.plist", base + "/veilchain"}
	}
	if !slices.Equal(names, want) {
		t.Errorf("archive entries %q, want %q", names, want)
	}

	var bin []byte
	for _, e := range entries {
		if e.name == base+"/"+exe {
			bin = e.data
			if e.mode != 0o755 {
				t.Errorf("%s mode %o, want 755", e.name, e.mode)
			}
		}
	}
	goEnv := func(name string) string {
		out, err := exec.Command("go", "env", name).Output()
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(out))
	}
	paths := []string{src, "veilchain-release-", goEnv("GOROOT") + "/", goEnv("GOMODCACHE"), goEnv("GOCACHE")}
	if home, err := os.UserHomeDir(); err == nil && len(home) > 1 {
		paths = append(paths, home+"/")
	}
	for _, p := range paths {
		if bytes.Contains(bin, []byte(p)) {
			t.Errorf("the binary contains the build path %q", p)
		}
	}
	exePath := filepath.Join(t.TempDir(), exe)
	if err := os.WriteFile(exePath, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(exePath, "version").CombinedOutput()
	if wantV := fmt.Sprintf("veilchain %s\ncommit %s\n%s %s\n", version, head, goEnv("GOVERSION"), target); err != nil || string(out) != wantV {
		t.Errorf("veilchain version: %v\n%s\nwant\n%s", err, out, wantV)
	}
}

type entry struct {
	name     string
	mode     int64
	uid, gid int
	time     time.Time
	data     []byte
}

func readArchive(t *testing.T, name string, data []byte) []entry {
	t.Helper()
	var out []entry
	if strings.HasSuffix(name, ".zip") {
		zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range zr.File {
			rc, err := f.Open()
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(rc)
			rc.Close()
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, entry{name: f.Name, mode: int64(f.Mode().Perm()), time: f.Modified, data: b})
		}
		return out
	}
	gz, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if gz.Name != "" || !gz.ModTime.IsZero() {
		t.Errorf("gzip header: name %q, time %v; want neither", gz.Name, gz.ModTime)
	}
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if h.Uname != "" || h.Gname != "" {
			t.Errorf("%s: owner names %q:%q, want none", h.Name, h.Uname, h.Gname)
		}
		out = append(out, entry{name: h.Name, mode: h.Mode, uid: h.Uid, gid: h.Gid, time: h.ModTime, data: b})
	}
}

// TestZipEntries: the Windows archives, which the test above builds only
// on Windows, hold the files in order, dated the release's time, with
// the executable's mode.
func TestZipEntries(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{"veilchain.exe": "MZ", "README.md": "# veilchain"} {
		os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600)
	}
	epoch := time.Unix(1700000000, 0).UTC()
	r := &release{epoch: epoch}
	files := []file{{name: "README.md", src: filepath.Join(dir, "README.md")}, {name: "veilchain.exe", src: filepath.Join(dir, "veilchain.exe"), exec: true}}
	var a, b bytes.Buffer
	if err := r.writeZip(&a, "top", files); err != nil {
		t.Fatal(err)
	}
	r.writeZip(&b, "top", files)
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Error("two zips of the same files differ")
	}
	got := readArchive(t, "x.zip", a.Bytes())
	want := []entry{{name: "top/", mode: 0o755}, {name: "top/README.md", mode: 0o644, data: []byte("# veilchain")}, {name: "top/veilchain.exe", mode: 0o755, data: []byte("MZ")}}
	if len(got) != len(want) {
		t.Fatalf("zip entries %+v, want %+v", got, want)
	}
	for i, e := range got {
		if e.name != want[i].name || e.mode != want[i].mode || !bytes.Equal(e.data, want[i].data) || !e.time.Equal(epoch) {
			t.Errorf("entry %d: %s %o %q %v; want %s %o %q %v", i, e.name, e.mode, e.data, e.time, want[i].name, want[i].mode, want[i].data, epoch)
		}
	}
}
