//go:build race

package email

// raceEnabled shrinks the large-message tests: the race detector slows
// byte loops about twentyfold.
const raceEnabled = true
