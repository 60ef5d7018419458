package main

import (
	"bufio"
	"fmt"
	"os"
	"strings"

	"github.com/urfave/cli/v2"
	"golang.org/x/crypto/bcrypt"
)

func hashPasswordCommand() *cli.Command {
	return &cli.Command{
		Name:  "hash-password",
		Usage: "read a password on stdin and print its bcrypt hash, for users: in the config",
		Action: func(c *cli.Context) error {
			fmt.Fprintln(os.Stderr, "password (one line):")
			line, err := bufio.NewReader(os.Stdin).ReadString('\n')
			if err != nil && line == "" {
				return fmt.Errorf("reading the password: %w", err)
			}
			pw := strings.TrimRight(line, "\r\n")
			if pw == "" || len(pw) > 72 {
				return fmt.Errorf("the password must be 1-72 bytes (bcrypt's limit)")
			}
			h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.DefaultCost)
			if err != nil {
				return err
			}
			fmt.Println(string(h))
			return nil
		},
	}
}
