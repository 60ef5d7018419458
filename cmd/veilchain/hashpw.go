package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/urfave/cli/v2"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/term"
)

func hashPasswordCommand() *cli.Command {
	return &cli.Command{
		Name:  "hash-password",
		Usage: "read a password and print its bcrypt hash, for users: in run's config or serve's --users-file",
		Description: "On a terminal the password is not echoed, and asked twice; otherwise it is the first line of stdin.\n" +
			"A password is never given as an argument: argv is visible to every user of the machine (ps).",
		Action: func(c *cli.Context) error {
			pw, err := readPassword(os.Stdin, c.App.ErrWriter)
			if err != nil {
				return err
			}
			if pw == "" || len(pw) > 72 {
				return fmt.Errorf("the password must be 1-72 bytes (bcrypt's limit)")
			}
			h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.DefaultCost)
			if err != nil {
				return err
			}
			fmt.Fprintln(c.App.Writer, string(h))
			return nil
		},
	}
}

// readPassword reads a password without echoing it when in is a terminal
// (asking twice, so a typo does not become the password), or the first
// line of in otherwise.
func readPassword(in *os.File, prompt io.Writer) (string, error) {
	if fd := int(in.Fd()); term.IsTerminal(fd) {
		fmt.Fprint(prompt, "password: ")
		a, err := term.ReadPassword(fd)
		fmt.Fprintln(prompt)
		if err != nil {
			return "", fmt.Errorf("reading the password: %w", err)
		}
		fmt.Fprint(prompt, "again: ")
		b, err := term.ReadPassword(fd)
		fmt.Fprintln(prompt)
		if err != nil {
			return "", fmt.Errorf("reading the password: %w", err)
		}
		if string(a) != string(b) {
			return "", errors.New("the two passwords differ")
		}
		return string(a), nil
	}
	fmt.Fprintln(prompt, "password (one line):")
	line, err := bufio.NewReader(in).ReadString('\n')
	if err != nil && line == "" {
		return "", fmt.Errorf("reading the password: %w", err)
	}
	return strings.TrimRight(line, "\r\n"), nil
}
