//go:build linux && portable

package e2e

// buildTags: see tags_test.go.
const buildTags = "portable"
