package main

import (
	"context"
	"fmt"

	"github.com/easd/easd/internal/config"
)

func runMigrate(ctx context.Context, e *env, args []string) error {
	fs := config.NewFlagSet("easd migrate", "easd migrate [flags]\n\nApply pending database migrations and exit. 'easd serve' applies them on start as well;\nrunning them here first lets an operator see and time the change.", e.getenv, e.stderr)
	sf := addStoreFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError("unexpected argument %q", fs.Arg(0))
	}
	s, where, err := sf.open(ctx, false)
	if err != nil {
		return err
	}
	defer s.Close()
	m, ok := s.(migrator)
	if !ok {
		return fmt.Errorf("%s: store cannot migrate", where)
	}
	applied, err := m.Migrate(ctx)
	if err != nil {
		return err
	}
	if len(applied) == 0 {
		fmt.Fprintf(e.stdout, "%s: schema is up to date\n", where)
		return nil
	}
	for _, v := range applied {
		fmt.Fprintf(e.stdout, "%s: applied migration %04d\n", where, v)
	}
	return nil
}
