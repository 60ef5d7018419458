// Command release builds veilchain's release archives. For every target
// it builds the binary (static: CGO_ENABLED=0; -trimpath; symbols
// stripped; the version and the commit stamped in) and packs it with the
// README, any licence files and the target's service files into
// veilchain_VERSION_OS_ARCH.tar.gz (.zip for Windows), then writes
// SHA256SUMS over the archives. Archive bytes depend only on the source,
// the commit and the Go toolchain: entries sorted, owned by 0:0, and
// dated SOURCE_DATE_EPOCH (default: the commit's time).
//
//	go run ./scripts/release [-out DIR] [-targets os/arch,...] VERSION
//
// In a git checkout it builds the HEAD commit from a fresh clone (what is
// not committed is not released); the archives go to DIR/VERSION
// (default dist/release/VERSION, which git ignores), replacing what was
// there.
package main

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/flate"
	"compress/gzip"
	"crypto/sha256"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// targets are the platforms a release is built for (the README's list).
var targets = []string{"linux/amd64", "linux/arm64", "windows/amd64", "windows/arm64", "darwin/amd64", "darwin/arm64", "freebsd/amd64"}

func main() {
	out := flag.String("out", "", "where the VERSION directory of archives goes (default: dist/release in the module)")
	only := flag.String("targets", strings.Join(targets, ","), "comma-separated os/arch `list` to build")
	flag.Usage = func() {
		fmt.Fprintln(flag.CommandLine.Output(), "usage: go run ./scripts/release [flags] VERSION   (e.g. v1.2.0)")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	r := &release{Version: flag.Arg(0), Targets: strings.Split(*only, ","), Log: os.Stderr}
	if err := r.run(*out); err != nil {
		fmt.Fprintln(os.Stderr, "release:", err)
		os.Exit(1)
	}
}

// release is one run: what to build, from where, and how.
type release struct {
	Version string
	Targets []string
	Src     string   // the module root ("": the one the working directory is in)
	Env     []string // added to go build's environment (tests: GOCACHE)
	Wrap    []string // runs go build under this command (tests: nice)
	Log     io.Writer

	build string    // the tree built: a clone of Src's HEAD, or Src
	epoch time.Time // every archive entry's time
	vcs   bool      // a git commit is built: stamp it
}

var versionRE = regexp.MustCompile(`^v?[0-9][0-9A-Za-z.+-]*$`)

// run builds every target into out/VERSION, with SHA256SUMS.
func (r *release) run(out string) error {
	if !versionRE.MatchString(r.Version) {
		return fmt.Errorf("version %q: want something like v1.2.0", r.Version)
	}
	for _, t := range r.Targets {
		if !slices.Contains(targets, t) {
			return fmt.Errorf("target %q: not one of %s", t, strings.Join(targets, ", "))
		}
	}
	if r.Src == "" {
		mod, err := exec.Command("go", "env", "GOMOD").Output()
		if err != nil || strings.TrimSpace(string(mod)) == "" || strings.TrimSpace(string(mod)) == os.DevNull {
			return fmt.Errorf("not inside the veilchain module: %v", err)
		}
		r.Src = filepath.Dir(strings.TrimSpace(string(mod)))
	}
	if out == "" {
		out = filepath.Join(r.Src, "dist", "release")
	}
	work, err := os.MkdirTemp("", "veilchain-release-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	if err := r.source(work); err != nil {
		return err
	}
	dir := filepath.Join(out, r.Version)
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}

	var sums []string
	for _, t := range r.Targets {
		name, err := r.archive(t, dir, work)
		if err != nil {
			return fmt.Errorf("%s: %w", t, err)
		}
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return err
		}
		sums = append(sums, fmt.Sprintf("%x  %s\n", sha256.Sum256(data), name))
		fmt.Fprintf(r.Log, "%s\n", filepath.Join(dir, name))
	}
	slices.Sort(sums)
	return os.WriteFile(filepath.Join(dir, "SHA256SUMS"), []byte(strings.Join(sums, "")), 0o644)
}

// source picks what is built: in a git checkout, its HEAD commit, cloned
// into work (so uncommitted changes stay out, the commit is stamped in
// even from a git worktree, and the checkout's path cannot matter); else
// the tree as it is. It finds the time the archives carry.
func (r *release) source(work string) error {
	git := func(dir string, args ...string) (string, error) {
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("git %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out)), nil
	}
	r.build = r.Src
	epoch := os.Getenv("SOURCE_DATE_EPOCH")
	if top, err := git(r.Src, "rev-parse", "--show-toplevel"); err != nil {
		fmt.Fprintln(r.Log, "release: not a git checkout: building the tree as it is; the binaries will say commit unknown")
	} else {
		r.vcs = true
		head, err := git(r.Src, "rev-parse", "HEAD")
		if err != nil {
			return err
		}
		if status, err := git(r.Src, "status", "--porcelain"); err != nil {
			return err
		} else if status != "" {
			fmt.Fprintf(r.Log, "release: building commit %s; uncommitted changes in %s are not in it:\n%s\n", head, r.Src, status)
		}
		clone := filepath.Join(work, "src")
		if _, err := git(work, "clone", "--quiet", "--no-checkout", top, clone); err != nil {
			return err
		}
		if _, err := git(clone, "checkout", "--quiet", "--detach", head); err != nil {
			return err
		}
		rel, err := filepath.Rel(top, r.Src) // the module's place in the repository
		if err != nil {
			return err
		}
		r.build = filepath.Join(clone, rel)
		if epoch == "" {
			if epoch, err = git(r.build, "log", "-1", "--format=%ct"); err != nil {
				return err
			}
		}
	}
	sec, err := strconv.ParseInt(epoch, 10, 64)
	if err != nil {
		return fmt.Errorf("SOURCE_DATE_EPOCH %q: want seconds since 1970 (it is needed outside a git checkout)", epoch)
	}
	r.epoch = time.Unix(sec, 0).UTC()
	return nil
}

// file is one archive entry: its name under the archive's top directory,
// where to read it, and whether it is executable.
type file struct {
	name, src string
	exec      bool
}

// archive builds target and packs it into dir; it returns the archive's name.
func (r *release) archive(target, dir, work string) (string, error) {
	goos, goarch, _ := strings.Cut(target, "/")
	base := fmt.Sprintf("veilchain_%s_%s_%s", r.Version, goos, goarch)
	exe := "veilchain"
	if goos == "windows" {
		exe += ".exe"
	}
	bin := filepath.Join(work, base, exe)
	vcs := "-buildvcs=false"
	if r.vcs {
		vcs = "-buildvcs=true" // a release says which commit it is, or fails
	}
	args := append(slices.Clone(r.Wrap), "go", "build", "-trimpath", vcs, "-ldflags", "-s -w -X main.version="+r.Version, "-o", bin, "./cmd/veilchain")
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Dir = r.build
	// Only what decides the output: no inherited GOFLAGS (tags, -race),
	// the baseline instruction sets, no cgo (a static binary).
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+goos, "GOARCH="+goarch, "GOFLAGS=", "GOAMD64=v1", "GOARM64=v8.0")
	cmd.Env = append(cmd.Env, r.Env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}

	files := []file{{name: exe, src: bin, exec: true}, {name: "README.md", src: filepath.Join(r.build, "README.md")}}
	var extra []string
	for _, pattern := range []string{"LICENSE*", "LICENCE*", "COPYING*", "NOTICE*"} {
		m, _ := filepath.Glob(filepath.Join(r.build, pattern))
		extra = append(extra, m...)
	}
	switch goos {
	case "linux":
		m, _ := filepath.Glob(filepath.Join(r.build, "dist", "systemd", "*.service"))
		extra = append(extra, m...)
	case "darwin":
		m, _ := filepath.Glob(filepath.Join(r.build, "dist", "launchd", "*.plist"))
		extra = append(extra, m...)
	}
	for _, src := range extra {
		rel, _ := filepath.Rel(r.build, src)
		files = append(files, file{name: strings.TrimPrefix(filepath.ToSlash(rel), "dist/"), src: src})
	}
	slices.SortFunc(files, func(a, b file) int { return strings.Compare(a.name, b.name) })

	var buf bytes.Buffer
	var err error
	name := base + ".tar.gz"
	if goos == "windows" {
		name = base + ".zip"
		err = r.writeZip(&buf, base, files)
	} else {
		err = r.writeTarGz(&buf, base, files)
	}
	if err != nil {
		return "", err
	}
	return name, os.WriteFile(filepath.Join(dir, name), buf.Bytes(), 0o644)
}

// dirs are the directories files need under top, each once, in order.
func dirs(top string, files []file) []string {
	seen := map[string]bool{}
	var out []string
	add := func(d string) {
		if !seen[d] {
			seen[d] = true
			out = append(out, d)
		}
	}
	add(top)
	for _, f := range files {
		if d := path.Dir(f.name); d != "." {
			add(top + "/" + d)
		}
	}
	slices.Sort(out)
	return out
}

func (r *release) writeTarGz(w io.Writer, top string, files []file) error {
	gz, err := gzip.NewWriterLevel(w, gzip.BestCompression) // no name, no time in its header
	if err != nil {
		return err
	}
	tw := tar.NewWriter(gz)
	hdr := func(name string, mode int64, typ byte, size int64) *tar.Header {
		return &tar.Header{Typeflag: typ, Name: name, Mode: mode, Size: size, ModTime: r.epoch, Format: tar.FormatUSTAR}
	}
	for _, d := range dirs(top, files) {
		if err := tw.WriteHeader(hdr(d+"/", 0o755, tar.TypeDir, 0)); err != nil {
			return err
		}
	}
	for _, f := range files {
		data, err := os.ReadFile(f.src)
		if err != nil {
			return err
		}
		mode := int64(0o644)
		if f.exec {
			mode = 0o755
		}
		if err := tw.WriteHeader(hdr(top+"/"+f.name, mode, tar.TypeReg, int64(len(data)))); err != nil {
			return err
		}
		if _, err := tw.Write(data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return gz.Close()
}

func (r *release) writeZip(w io.Writer, top string, files []file) error {
	zw := zip.NewWriter(w)
	zw.RegisterCompressor(zip.Deflate, func(w io.Writer) (io.WriteCloser, error) {
		return flate.NewWriter(w, flate.BestCompression)
	})
	for _, d := range dirs(top, files) {
		h := &zip.FileHeader{Name: d + "/", Method: zip.Store, Modified: r.epoch}
		h.SetMode(0o755 | os.ModeDir)
		if _, err := zw.CreateHeader(h); err != nil {
			return err
		}
	}
	for _, f := range files {
		data, err := os.ReadFile(f.src)
		if err != nil {
			return err
		}
		h := &zip.FileHeader{Name: top + "/" + f.name, Method: zip.Deflate, Modified: r.epoch}
		h.SetMode(0o644)
		if f.exec {
			h.SetMode(0o755)
		}
		fw, err := zw.CreateHeader(h)
		if err != nil {
			return err
		}
		if _, err := fw.Write(data); err != nil {
			return err
		}
	}
	return zw.Close()
}
