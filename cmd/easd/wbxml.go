package main

import (
	"context"
	"errors"
)

func runWBXML(_ context.Context, _ *env, _ []string) error {
	return errors.New("not yet wired")
}
