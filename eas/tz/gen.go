package tz

//go:generate go run ./internal/gen -o windowszones_gen.go
