package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/veilchain/veilchain/configs"
)

func initCommand() *cli.Command {
	return &cli.Command{
		Name:  "init",
		Usage: "write a commented starter config where run looks for it, and print its path",
		Description: "The file is veilchain/config.yaml in the platform's config dir; run and check read it when no -c\n" +
			"is given. An existing file is never overwritten. Edit it: paste the URLs `veilchain serve` printed.",
		Action: func(c *cli.Context) error {
			file, err := configs.UserFile()
			if err != nil {
				return fmt.Errorf("no config dir to write to (%w): give run a file with -c FILE", err)
			}
			if err := writeStarter(file); err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "%s\n\nA starter config, for you to edit: replace each hop with the URL `veilchain serve` printed\n"+
				"on that machine (the file says how). Then: veilchain check, and veilchain run.\n", file)
			return nil
		},
	}
}

// writeStarter writes configs.Starter to file, making its directory
// (0700) if needed; the file is 0600 (it will hold the exit's password).
// It refuses, naming the file, if one is there already.
func writeStarter(file string) error {
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%s exists already, and init never overwrites a config: edit it, or move it away and run init again", file)
	}
	if err != nil {
		return err
	}
	if _, err := f.Write(configs.Starter()); err != nil {
		f.Close()
		os.Remove(file)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(file)
		return err
	}
	return nil
}
