// Command veilchain is a local proxy that sends every connection through a
// chain of remote proxies, and the hop/exit server for such chains.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"
)

func main() {
	// The first SIGINT/SIGTERM starts a graceful stop. Default handling is
	// restored before anyone hears of it, so a second one always ends the
	// process at once.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		select {
		case <-sigs:
		case <-ctx.Done(): // the command returned on its own
		}
		signal.Stop(sigs)
		cancel()
	}()
	if err := newApp().RunContext(ctx, os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "veilchain:", err)
		os.Exit(1)
	}
}

func newApp() *cli.App {
	app := &cli.App{
		Name:  "veilchain",
		Usage: "hide behind a chain of remote proxies",
		Description: "run: a local SOCKS5 front end whose connections go through a chain of hops.\n" +
			"serve: a SOCKS5 hop/exit server for such chains.\n" +
			"demo: a whole chain on this machine, to see what a destination sees.\n" +
			"init: write a starter config where run looks for it.",
		Commands: []*cli.Command{runCommand(), serveCommand(), initCommand(), demoCommand(), checkCommand(), reloadCommand(), statusCommand(), explainCommand(), envCommand(), importCommand(), execCommand(), pacCommand(), hashPasswordCommand(), versionCommand()},
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "version", Aliases: []string{"v"}, Usage: "print the version and exit"},
		},
		Action: appAction,
		// A comma may be part of a value (a password in a --hop URL or a
		// --user): several values are given by repeating the flag.
		DisableSliceFlagSeparator: true,
		// Errors come back to main, which prints them and exits 1; the
		// default handler would exit from inside Run.
		ExitErrHandler: func(*cli.Context, error) {},
	}
	for _, cmd := range app.Commands {
		if cmd.ArgsUsage == "" && cmd.Before == nil {
			cmd.Before = noArgs // a command that names no arguments takes none
		}
	}
	return app
}

// appAction runs when no command was named: --version, or the help, or
// an error for a name that is no command.
func appAction(c *cli.Context) error {
	switch {
	case c.Bool("version"):
		printVersion(c.App.Writer)
		return nil
	case c.Args().Present():
		var names []string
		for _, cmd := range c.App.VisibleCommands() {
			names = append(names, cmd.Name)
		}
		return fmt.Errorf("unknown command %q: the commands are %s (see veilchain help COMMAND)",
			c.Args().First(), strings.Join(names, ", "))
	}
	return cli.ShowAppHelp(c)
}

var logFlags = []cli.Flag{
	&cli.StringFlag{Name: "log-level", Usage: "debug, info, warn or error (destinations appear only at debug)", Value: "info"},
	&cli.StringFlag{Name: "log-format", Usage: "text or json", Value: "text"},
}

// newLogger builds the process logger; logs go to stderr.
func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	log, _, err := newLevelLogger(w, level, format)
	return log, err
}

// logEvery is how often a line of one kind may repeat (see rateHandler).
const logEvery = 10 * time.Second

// newLevelLogger is newLogger with its level kept in a LevelVar, which a
// reload can change.
func newLevelLogger(w io.Writer, level, format string) (*slog.Logger, *slog.LevelVar, error) {
	lv := &slog.LevelVar{}
	if err := setLevel(lv, level); err != nil {
		return nil, nil, err
	}
	opts := &slog.HandlerOptions{Level: lv}
	var h slog.Handler
	switch format {
	case "text":
		h = slog.NewTextHandler(w, opts)
	case "json":
		h = slog.NewJSONHandler(w, opts)
	default:
		return nil, nil, fmt.Errorf("log format %q: want text or json", format)
	}
	return slog.New(newRateHandler(h, logEvery)), lv, nil
}

func setLevel(lv *slog.LevelVar, level string) error {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return fmt.Errorf("log level %q: want debug, info, warn or error", level)
	}
	lv.Set(l)
	return nil
}
