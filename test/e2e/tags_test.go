//go:build linux && !portable

package e2e

// buildTags are the tags the binary under test is built with: those of
// this test binary, so that a run with -tags portable tests the portable
// binary too.
const buildTags = ""
