// Command packaging builds zfw's .deb and .rpm packages (make package):
// the zfw, edge-router and ziti-tunnel programs in /opt/openziti/bin,
// where the C zfw keeps its own and OpenZiti's router config points its
// diverter, a systemd unit for each mode (zfw-router runs edge-router on
// /opt/openziti/etc/ebpf_config.json, zfw-tunnel runs ziti-tunnel), their
// settings files in /etc/default, and the operator docs.
//
//	go run . -bin DIR -docs DIR -version V -out DIR
//
// It is a module of its own so that the packaging library's dependencies
// stay out of the zfw module's.
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/goreleaser/nfpm/v2"
	_ "github.com/goreleaser/nfpm/v2/deb"
	"github.com/goreleaser/nfpm/v2/files"
	_ "github.com/goreleaser/nfpm/v2/rpm"
)

// programs are installed in binDir.
var programs = []string{"zfw", "edge-router", "ziti-tunnel"}

const (
	binDir  = "/opt/openziti/bin"
	docDir  = "/opt/openziti/share/doc/zfw"
	unitDir = "/usr/lib/systemd/system"
)

func main() {
	bin := flag.String("bin", "", "folder holding the built programs")
	docs := flag.String("docs", "", "folder holding the operator docs (operators.md, security.md)")
	version := flag.String("version", "", "package version (e.g. 0.3.0 or 0.0.0~git20261204.4710d68)")
	out := flag.String("out", "dist", "folder the packages are written to")
	flag.Parse()
	if *bin == "" || *docs == "" || *version == "" || flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}
	info, err := packageInfo(*bin, *docs, *version)
	if err != nil {
		log.Fatalf("packaging: %v", err)
	}
	for _, format := range []string{"deb", "rpm"} {
		name, err := build(info, format, *out)
		if err != nil {
			log.Fatalf("packaging: %s: %v", format, err)
		}
		fmt.Println(name)
	}
}

// packageInfo describes the package; the files under files/ are next to
// this program.
func packageInfo(bin, docs, version string) (*nfpm.Info, error) {
	var contents files.Contents
	for _, p := range programs {
		src := filepath.Join(bin, p)
		if _, err := os.Stat(src); err != nil {
			return nil, fmt.Errorf("program %s: %w", p, err)
		}
		contents = append(contents, &files.Content{Source: src, Destination: filepath.Join(binDir, p),
			FileInfo: &files.ContentFileInfo{Mode: 0o755}})
	}
	// zfw on the PATH too, where operators of the C zfw type it.
	contents = append(contents, &files.Content{Source: filepath.Join(binDir, "zfw"), Destination: "/usr/sbin/zfw", Type: files.TypeSymlink})
	for _, unit := range []string{"zfw-router", "zfw-tunnel"} {
		contents = append(contents,
			&files.Content{Source: filepath.Join("files", unit+".service"), Destination: filepath.Join(unitDir, unit+".service"),
				FileInfo: &files.ContentFileInfo{Mode: 0o644}},
			// The operator's settings survive upgrades and removal (purge
			// removes them).
			&files.Content{Source: filepath.Join("files", unit+".default"), Destination: "/etc/default/" + unit,
				Type: files.TypeConfigNoReplace, FileInfo: &files.ContentFileInfo{Mode: 0o644}})
	}
	for _, doc := range []string{"operators.md", "security.md"} {
		contents = append(contents, &files.Content{Source: filepath.Join(docs, doc), Destination: filepath.Join(docDir, doc),
			FileInfo: &files.ContentFileInfo{Mode: 0o644}})
	}
	info := &nfpm.Info{
		Name:        "zfw",
		Arch:        "amd64",
		Platform:    "linux",
		Version:     version,
		Section:     "net",
		Priority:    "optional",
		Maintainer:  "zfw-go developers <zfw-go@users.noreply.github.com>",
		Description: "eBPF dataplane for OpenZiti tunnelers and routers: zfw (the C zfw's command line), edge-router and ziti-tunnel",
		Vendor:      "zfw-go",
		Homepage:    "https://github.com/zfw-go/zfw",
		License:     "Apache-2.0",
		Overridables: nfpm.Overridables{
			Contents:  contents,
			Conflicts: []string{"zfw-router", "zfw-tunnel"}, // the C zfw's packages
			Scripts: nfpm.Scripts{
				PostInstall: filepath.Join("files", "postinstall.sh"),
				PreRemove:   filepath.Join("files", "preremove.sh"),
				PostRemove:  filepath.Join("files", "postremove.sh"),
			},
		},
	}
	info = nfpm.WithDefaults(info)
	if err := nfpm.Validate(info); err != nil {
		return nil, err
	}
	return info, nil
}

// build writes the package of one format into out and returns its path.
func build(info *nfpm.Info, format, out string) (string, error) {
	p, err := nfpm.Get(format)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return "", err
	}
	name := filepath.Join(out, p.ConventionalFileName(info))
	f, err := os.Create(name)
	if err != nil {
		return "", err
	}
	if err := p.Package(info, f); err != nil {
		f.Close()
		os.Remove(name)
		return "", err
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	return name, nil
}
