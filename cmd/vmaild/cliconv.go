package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
)

// systemConfigPath is where a packaged vmaild keeps its configuration, read
// when neither -c nor $VMAILD_CONFIG names a file.
const systemConfigPath = "/etc/vmaild/vmaild.yaml"

// configSource is the file a command reads and why; path "" is the
// embedded default.
type configSource struct {
	path, why string
}

// findConfig applies the lookup order: -c, then $VMAILD_CONFIG, then the
// system file, then the embedded default, but only when no file exists
// anywhere. A file that is named but missing is an error, never a silent
// fall back to a fresh ./data.
func findConfig(flagPath, systemPath string) (configSource, error) {
	if flagPath != "" {
		return configSource{flagPath, "-c"}, nil
	}
	if p := os.Getenv("VMAILD_CONFIG"); p != "" {
		return configSource{p, "$VMAILD_CONFIG"}, nil
	}
	_, err := os.Stat(systemPath)
	switch {
	case err == nil:
		return configSource{systemPath, "system file"}, nil
	case !errors.Is(err, fs.ErrNotExist):
		// There, but unreadable (often: not root): say so rather than run
		// on defaults that write a new database elsewhere.
		return configSource{}, fmt.Errorf("configuration %s: %w (use -c FILE or $VMAILD_CONFIG to read another)", systemPath, err)
	}
	return configSource{"", "no -c, no $VMAILD_CONFIG, no " + systemPath}, nil
}

// describe is the stderr line that says which configuration a command runs
// with, so that a command run in the wrong place cannot quietly write a new
// database there.
func (s configSource) describe(cfg Config) string {
	if s.path == "" {
		return fmt.Sprintf("configuration: built-in defaults (%s), data in %s", s.why, cfg.DataDir)
	}
	return fmt.Sprintf("configuration: %s (%s)", s.path, s.why)
}

// usageError is a command line vmaild cannot run: exit status 2, as for
// any Unix tool given bad arguments, and one line that says what to do.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }
func (e usageError) ExitCode() int { return 2 }

// enforceUsage makes every command of the tree refuse unknown subcommands
// and bad arguments with a usageError: cobra's own behaviour prints the
// help and exits 0 for `vmaild user lst`, which a script takes for success.
func enforceUsage(root *cobra.Command) {
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageError{fmt.Sprintf("%s%v (see %s --help)", commandPrefix(c), err, c.CommandPath())}
	})
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		orig := c.Args
		if c.HasSubCommands() && !c.Runnable() {
			// A group: runnable, so that cobra validates its arguments
			// (it prints the help of a group without looking at them).
			c.RunE = func(c *cobra.Command, args []string) error { return c.Help() }
			if c.Annotations == nil {
				c.Annotations = map[string]string{}
			}
			c.Annotations["noconfig"] = "yes"
			orig = func(c *cobra.Command, args []string) error {
				if len(args) == 0 {
					return nil
				}
				msg := fmt.Sprintf("unknown command %q", args[0])
				c.SuggestionsMinimumDistance = 2
				if s := c.SuggestionsFor(args[0]); len(s) > 0 {
					msg += "; did you mean " + strings.Join(s, " or ") + "?"
				}
				return errors.New(msg)
			}
		}
		if orig != nil {
			c.Args = func(c *cobra.Command, args []string) error {
				if err := orig(c, args); err != nil {
					return usageError{fmt.Sprintf("%s%v (see %s --help)", commandPrefix(c), err, c.CommandPath())}
				}
				return nil
			}
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}

// commandPrefix is "domain add: " for an error of `vmaild domain add`;
// main prints "vmaild: " before it.
func commandPrefix(c *cobra.Command) string {
	if !c.HasParent() {
		return ""
	}
	_, path, _ := strings.Cut(c.CommandPath(), " ")
	return path + ": "
}

// versionInfo is what `vmaild version` prints, from the build information
// the Go toolchain embeds (module version, VCS revision and time).
type versionInfo struct {
	Version   string `json:"version"`
	Revision  string `json:"revision,omitempty"`
	Time      string `json:"time,omitempty"`
	Modified  bool   `json:"modified,omitempty"`
	GoVersion string `json:"go"`
}

func buildVersion() versionInfo {
	v := versionInfo{Version: "(devel)", GoVersion: runtime.Version()}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	if bi.Main.Version != "" {
		v.Version = bi.Main.Version
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Revision = s.Value
		case "vcs.time":
			v.Time = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		}
	}
	return v
}

func (v versionInfo) String() string {
	s := v.Version
	if v.Revision != "" {
		rev := v.Revision
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if v.Modified {
			rev += "+modified"
		}
		s += " (" + strings.TrimSpace(rev+" "+v.Time) + ")"
	}
	return s + " " + v.GoVersion
}

func versionCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:         "version",
		Short:       "Print vmaild's version, revision and Go version",
		Args:        cobra.NoArgs,
		Annotations: map[string]string{"noconfig": "yes"},
		RunE: func(cmd *cobra.Command, args []string) error {
			v := buildVersion()
			if asJSON {
				return printJSON(cmd.OutOrStdout(), v)
			}
			_, err := fmt.Fprintln(cmd.OutOrStdout(), "vmaild", v)
			return err
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
