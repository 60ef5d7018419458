//go:build portable

package test

// buildTags: see tags_test.go.
const buildTags = "portable"
