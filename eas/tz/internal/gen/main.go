// Command gen writes eas/tz/windowszones_gen.go from CLDR's
// windowsZones.xml and bcp47/timezone.xml (Debian package
// unicode-cldr-core). Run it with `go generate ./eas/tz`.
package main

import (
	"flag"
	"log"
	"os"

	"github.com/easd/easd/eas/tz/internal/zonegen"
)

func main() {
	wzPath := flag.String("windowszones", zonegen.DefaultWindowsZones, "path of CLDR common/supplemental/windowsZones.xml")
	bcpPath := flag.String("bcp47", zonegen.DefaultBCP47, "path of CLDR common/bcp47/timezone.xml")
	out := flag.String("o", "windowszones_gen.go", "output file")
	flag.Parse()
	wz, err := os.ReadFile(*wzPath)
	if err != nil {
		log.Fatal(err)
	}
	bcp, err := os.ReadFile(*bcpPath)
	if err != nil {
		log.Fatal(err)
	}
	src, err := zonegen.Generate(wz, bcp)
	if err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(*out, src, 0o644); err != nil {
		log.Fatal(err)
	}
}
