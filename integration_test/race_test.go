//go:build race

package integration_test

// raceEnabled is true when the tests run under -race; the binary under test
// is then built with the race detector too.
const raceEnabled = true
