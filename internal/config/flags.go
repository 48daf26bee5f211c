// Package config builds command-line flag sets whose defaults come from
// EASD_* environment variables, so every setting can be given either way
// (flags win over the environment, the environment over built-in defaults).
package config

import (
	"flag"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Getenv looks up an environment variable; os.Getenv in production, a map
// in tests.
type Getenv func(key string) string

// FlagSet is a flag.FlagSet that records which environment variable feeds
// each flag, for help output and the README's configuration table.
type FlagSet struct {
	*flag.FlagSet
	getenv Getenv
	env    map[string]string // flag name -> env var
	errs   []error           // bad environment values, reported by Parse
}

// NewFlagSet returns a flag set named name (e.g. "easd serve") that reports
// errors instead of exiting and prints usage to out.
func NewFlagSet(name, synopsis string, getenv Getenv, out io.Writer) *FlagSet {
	fs := &FlagSet{FlagSet: flag.NewFlagSet(name, flag.ContinueOnError), getenv: getenv, env: map[string]string{}}
	fs.SetOutput(out)
	fs.Usage = func() {
		fmt.Fprintf(out, "usage: %s\n", synopsis)
		if fs.hasFlags() {
			fmt.Fprintf(out, "\nflags (each defaults to its environment variable when set):\n")
			fs.PrintDefaults()
		}
	}
	return fs
}

func (fs *FlagSet) hasFlags() bool {
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	return n > 0
}

// PrintDefaults prints one entry per flag with its environment variable.
func (fs *FlagSet) PrintDefaults() {
	var names []string
	fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
	sort.Strings(names)
	w := fs.Output()
	for _, n := range names {
		f := fs.Lookup(n)
		def := f.DefValue
		if def == "" {
			def = `""`
		}
		fmt.Fprintf(w, "  --%s", n)
		if env := fs.env[n]; env != "" {
			fmt.Fprintf(w, "  (env %s)", env)
		}
		fmt.Fprintf(w, "  default %s\n      %s\n", def, f.Usage)
	}
}

// Env returns the environment variable bound to the named flag.
func (fs *FlagSet) Env(name string) string { return fs.env[name] }

// Parse parses args and reports the first invalid environment value.
func (fs *FlagSet) Parse(args []string) error {
	if len(fs.errs) > 0 {
		// Report like the flag package reports a bad flag value.
		fmt.Fprintln(fs.Output(), fs.errs[0])
		fs.Usage()
		return fs.errs[0]
	}
	return fs.FlagSet.Parse(args)
}

func (fs *FlagSet) lookup(name, env string) (string, bool) {
	fs.env[name] = env
	if env == "" || fs.getenv == nil {
		return "", false
	}
	v := fs.getenv(env)
	return v, v != ""
}

// String defines a string flag whose default is $env when set, else def.
func (fs *FlagSet) String(name, env, def, usage string) *string {
	if v, ok := fs.lookup(name, env); ok {
		def = v
	}
	return fs.FlagSet.String(name, def, usage)
}

// Bool defines a boolean flag whose default is $env when set, else def.
func (fs *FlagSet) Bool(name, env string, def bool, usage string) *bool {
	if v, ok := fs.lookup(name, env); ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			fs.errs = append(fs.errs, fmt.Errorf("%s=%q: want true or false", env, v))
		} else {
			def = b
		}
	}
	return fs.FlagSet.Bool(name, def, usage)
}

// Int defines an integer flag whose default is $env when set, else def.
func (fs *FlagSet) Int(name, env string, def int, usage string) *int {
	if v, ok := fs.lookup(name, env); ok {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil {
			fs.errs = append(fs.errs, fmt.Errorf("%s=%q: want an integer", env, v))
		} else {
			def = n
		}
	}
	return fs.FlagSet.Int(name, def, usage)
}

// Duration defines a duration flag whose default is $env when set, else def.
func (fs *FlagSet) Duration(name, env string, def time.Duration, usage string) *time.Duration {
	if v, ok := fs.lookup(name, env); ok {
		d, err := time.ParseDuration(strings.TrimSpace(v))
		if err != nil {
			fs.errs = append(fs.errs, fmt.Errorf("%s=%q: want a duration such as 10s", env, v))
		} else {
			def = d
		}
	}
	return fs.FlagSet.Duration(name, def, usage)
}
