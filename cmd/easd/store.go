package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/easd/easd/internal/config"
	"github.com/easd/easd/store"
	"github.com/easd/easd/store/postgres"
	"github.com/easd/easd/store/sqlite"
)

// storeFlags are the database settings shared by serve, migrate and user.
type storeFlags struct {
	database *string
	dataDir  *string
}

func addStoreFlags(fs *config.FlagSet) storeFlags {
	return storeFlags{
		database: fs.String("database", "EASD_DATABASE", "",
			"database: empty for the embedded SQLite file in --data-dir, a postgres:// URL, or sqlite:PATH"),
		dataDir: fs.String("data-dir", "EASD_DATA_DIR", "./data",
			"directory for the embedded SQLite database and other local state"),
	}
}

// dialect and location of the configured database.
func (f storeFlags) target() (dialect, where string, err error) {
	db := strings.TrimSpace(*f.database)
	switch {
	case db == "":
		return "sqlite", filepath.Join(*f.dataDir, "easd.db"), nil
	case strings.HasPrefix(db, "postgres://"), strings.HasPrefix(db, "postgresql://"):
		return "postgres", db, nil
	case strings.HasPrefix(db, "sqlite://"):
		return "sqlite", strings.TrimPrefix(db, "sqlite://"), nil
	case strings.HasPrefix(db, "sqlite:"):
		return "sqlite", strings.TrimPrefix(db, "sqlite:"), nil
	}
	return "", "", usageError("--database %q: want empty, postgres://... or sqlite:PATH", redactURL(db))
}

// migrator is the optional capability of both stores to apply migrations
// and report the versions applied.
type migrator interface {
	Migrate(ctx context.Context) ([]int, error)
}

// open opens the configured store. With migrate, pending migrations are
// applied first.
func (f storeFlags) open(ctx context.Context, migrate bool) (store.Store, string, error) {
	dialect, where, err := f.target()
	if err != nil {
		return nil, "", err
	}
	switch dialect {
	case "postgres":
		s, err := postgres.Open(ctx, where, postgres.Options{Migrate: migrate})
		if err != nil {
			return nil, "", err
		}
		return s, "postgres " + redactURL(where), nil
	default:
		s, err := sqlite.Open(ctx, where, sqlite.Options{Migrate: migrate})
		if err != nil {
			return nil, "", err
		}
		return s, "sqlite " + where, nil
	}
}

// redactURL hides a password in a database URL for messages and logs.
func redactURL(u string) string {
	at := strings.LastIndex(u, "@")
	scheme := strings.Index(u, "://")
	if at < 0 || scheme < 0 || at < scheme {
		return u
	}
	cred := u[scheme+3 : at]
	if i := strings.Index(cred, ":"); i >= 0 {
		return fmt.Sprintf("%s%s:xxxxx%s", u[:scheme+3], cred[:i], u[at:])
	}
	return u
}
