// Package rules holds no code: its tests check rules of the whole project
// (import direction, package documentation, a tidy go.mod), so that a
// change breaking one fails like any other test.
package rules
