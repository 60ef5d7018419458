package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/urfave/cli/v2"
)

// version is the release this binary is, when the build says so:
//
//	go build -ldflags "-X main.version=v1.2.0" ./cmd/veilchain
//
// Otherwise it is the module version `go install ...@v1.2.0` records, or
// "devel".
var version string

func versionCommand() *cli.Command {
	return &cli.Command{
		Name:  "version",
		Usage: "print the version, the commit it was built from and the Go version",
		Action: func(c *cli.Context) error {
			printVersion(c.App.Writer)
			return nil
		},
	}
}

func printVersion(w io.Writer) {
	info, _ := debug.ReadBuildInfo()
	io.WriteString(w, versionText(version, info))
}

// versionText says what the binary is: its version, the commit it was
// built from (vcs.revision, "+modified" for a dirty tree, "unknown" when
// the build recorded none, e.g. -buildvcs=false), and the Go toolchain.
func versionText(ldVersion string, info *debug.BuildInfo) string {
	v, commit, goVersion := ldVersion, "unknown", runtime.Version()
	if info != nil {
		if v == "" && info.Main.Version != "" && info.Main.Version != "(devel)" {
			v = info.Main.Version
		}
		var modified bool
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				commit = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
		if modified && commit != "unknown" {
			commit += "+modified"
		}
		if info.GoVersion != "" {
			goVersion = info.GoVersion
		}
	}
	if v == "" {
		v = "devel"
	}
	return fmt.Sprintf("veilchain %s\ncommit %s\n%s %s/%s\n", v, commit, goVersion, runtime.GOOS, runtime.GOARCH)
}
