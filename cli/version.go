package cli

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// version and commit describe the build. The Makefile sets them with
// -ldflags "-X github.com/taskgate/taskgate/cli.version=… -X
// github.com/taskgate/taskgate/cli.commit=…"; left empty (go build, go
// install), they come from what the Go toolchain records in the binary.
var (
	version string
	commit  string
)

// buildInfo is what `taskgate version` prints.
type buildInfo struct {
	Version   string // a tag, "v1.2.3-4-gabcdef0", or "devel"
	Commit    string // the full revision, "-dirty" when built from a modified tree; "unknown"
	GoVersion string // the toolchain that built the binary
	Platform  string // GOOS/GOARCH
}

// describeBuild fills what the linker flags left empty from the Go
// toolchain's record: the module version (set by `go install …@vX`) and
// the VCS stamp (vcs.revision, vcs.modified) of a build inside a checkout.
func describeBuild(version, commit string, info *debug.BuildInfo) buildInfo {
	b := buildInfo{Version: version, Commit: commit, GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if info != nil {
		if info.GoVersion != "" {
			b.GoVersion = info.GoVersion
		}
		if b.Version == "" && info.Main.Version != "(devel)" {
			b.Version = info.Main.Version
		}
		if b.Commit == "" {
			var revision, modified string
			for _, s := range info.Settings {
				switch s.Key {
				case "vcs.revision":
					revision = s.Value
				case "vcs.modified":
					modified = s.Value
				}
			}
			if revision != "" && modified == "true" {
				revision += "-dirty"
			}
			b.Commit = revision
		}
	}
	if b.Version == "" {
		b.Version = "devel"
	}
	if b.Commit == "" {
		b.Commit = "unknown"
	}
	return b
}

// versionCommand is `taskgate version`.
func (e *cliEnv) versionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit and Go version of this binary",
		Args:  exactArgs(0, "version"),
		RunE: func(*cobra.Command, []string) error {
			info, _ := debug.ReadBuildInfo()
			b := describeBuild(version, commit, info)
			_, err := fmt.Fprintf(e.stdout, "taskgate %s\ncommit: %s\ngo: %s %s\n", b.Version, b.Commit, b.GoVersion, b.Platform)
			return err
		},
	}
}
