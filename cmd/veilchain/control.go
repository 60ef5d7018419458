package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/veilchain/veilchain/internal/control"
	"github.com/veilchain/veilchain/internal/stats"
)

func controlPathText() string {
	if p, err := control.DefaultPath(); err == nil {
		return p
	}
	return "<user config dir>/veilchain/control.sock"
}

// controlPath is the --control flag's socket path, its default if the
// flag was not given, or "" for none.
func controlPath(c *cli.Context) (string, error) {
	if c.IsSet("control") {
		return c.String("control"), nil
	}
	return control.DefaultPath()
}

// runControlPath is the control socket a client command (reload,
// status) asks: --control's, or run's default.
func runControlPath(c *cli.Context) (string, error) {
	path, err := controlPath(c)
	if err == nil && path == "" {
		err = fmt.Errorf("--control: give the control socket's path")
	}
	return path, err
}

// startControl opens run's control endpoint. Without it a reload needs
// SIGHUP, so a socket that cannot be had is a warning, not a reason not
// to run.
func startControl(c *cli.Context, reload func() error, reg *stats.Registry, log *slog.Logger) *server {
	path, err := controlPath(c)
	if err != nil || path == "" {
		if err != nil {
			log.Warn("no control socket: `veilchain reload` cannot reach this process", "err", err)
		}
		return nil
	}
	ln, err := control.Listen(path)
	if err != nil {
		hint := ""
		if errors.Is(err, control.ErrInUse) {
			hint = "; give this one its own with --control PATH"
		}
		log.Warn("no control socket: `veilchain reload` cannot reach this process"+hint, "err", err)
		return nil
	}
	log.Info("control socket", "path", path)
	return &server{&control.Server{Reload: reload, Status: func() any {
		st := reg.Status()
		st.PID = os.Getpid()
		return st
	}}, ln}
}

func reloadCommand() *cli.Command {
	return &cli.Command{
		Name:  "reload",
		Usage: "make a running `veilchain run` read its config again (through its control socket)",
		Description: "New connections use the new chains, rules, block lists and users; live ones keep theirs.\n" +
			"A config that does not load is reported here, and the running one stays.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "control", Usage: "the control socket `PATH` of the run to reload", DefaultText: controlPathText()},
		},
		Action: func(c *cli.Context) error {
			path, err := runControlPath(c)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(c.Context, 30*time.Second)
			defer cancel()
			var res control.Result
			if err := control.Call(ctx, path, "POST", "/v1/reload", &res); err != nil {
				return err
			}
			if !res.OK {
				return fmt.Errorf("reload failed, the running config stays: %s", res.Error)
			}
			fmt.Fprintln(c.App.Writer, "reloaded")
			return nil
		},
	}
}
