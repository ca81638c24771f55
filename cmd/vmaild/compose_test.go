package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	composecli "github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/go-sql-driver/mysql"

	"github.com/vmaild/vmaild/internal/testsrv"
	"github.com/vmaild/vmaild/schema"
	"github.com/vmaild/vmaild/userdb/ldif"
)

// No Docker engine runs where the tests do, so `docker compose up` cannot
// prove the deployment files work together. These tests check what can be
// checked without it: that docker-compose.yml loads as `docker compose
// config` (Compose v2) loads it, and that it, the configuration it mounts,
// the Dockerfile, the OpenLDAP and MySQL initialisation files and the
// systemd unit name the same services, ports, paths, secrets and keys.

const repoRoot = "../.."

// composeFile is the loaded project, reduced to what these tests compare.
type composeFile struct {
	Services map[string]composeService // enabled and disabled (profiles) alike
	Volumes  map[string]bool
}

type composeService struct {
	Image       string
	Build       string // context, relative to the repository; "" for an image
	Hostname    string
	Profiles    []string
	Environment map[string]string
	Mounts      []mount
	Ports       []types.ServicePortConfig
	DependsOn   types.DependsOnConfig
	Healthcheck []string
}

// mount is one volume: a bind mount of Source (relative to the repository,
// "./…") or a named volume Source.
type mount struct {
	Source, Target string
	Bind           bool
}

func (s composeService) mountAt(target string) (mount, bool) {
	for _, m := range s.Mounts {
		if m.Target == target {
			return m, true
		}
	}
	return mount{}, false
}

func (m mount) isBind() bool { return m.Bind }

// published is one entry of ports: host port to container port.
type published struct{ Host, Container int }

func (s composeService) published(t *testing.T) []published {
	t.Helper()
	var ps []published
	for _, p := range s.Ports {
		host, err := strconv.Atoi(p.Published)
		if err != nil {
			t.Errorf("port %d: published on %q; publish it on one host port so the standard port leads to vmaild's", p.Target, p.Published)
			continue
		}
		ps = append(ps, published{host, int(p.Target)})
	}
	return ps
}

// envExample is the repository's .env.example, the settings an admin copies
// to .env.
func envExample(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, ".env.example"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// writeEnv writes an env file for loadCompose: .env.example with the
// given variables replaced (or, with remove, left out).
func writeEnv(t *testing.T, set map[string]string, remove ...string) string {
	t.Helper()
	var out []string
	for _, line := range strings.Split(envExample(t), "\n") {
		k, _, ok := strings.Cut(line, "=")
		if ok && slices.Contains(remove, k) {
			continue
		}
		if v, ok2 := set[k]; ok && ok2 {
			line = k + "=" + v
		}
		out = append(out, line)
	}
	f := filepath.Join(t.TempDir(), "env")
	if err := os.WriteFile(f, []byte(strings.Join(out, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// loadCompose loads docker-compose.yml with envFile as `docker compose
// --env-file envFile [--profile P]... config` does (compose-go is the loader
// of Compose v2): interpolation, path resolution, normalization and the
// consistency checks. The process environment is left out on purpose, so
// that an admin's exported variables cannot change what the tests see.
func loadCompose(envFile string, profiles ...string) (*types.Project, error) {
	opts, err := composecli.NewProjectOptions([]string{filepath.Join(repoRoot, "docker-compose.yml")},
		composecli.WithWorkingDirectory(repoRoot),
		composecli.WithConfigFileEnv,
		composecli.WithEnvFiles(envFile),
		composecli.WithDotEnv,
		composecli.WithInterpolation(true),
		composecli.WithResolvedPaths(true),
		composecli.WithNormalization(true),
		composecli.WithConsistency(true),
		composecli.WithProfiles(profiles),
	)
	if err != nil {
		return nil, err
	}
	return opts.LoadProject(context.Background())
}

// readCompose loads docker-compose.yml with every profile and the values
// of .env.example, and fails the test on any error `docker compose config`
// would report.
func readCompose(t *testing.T) composeFile {
	t.Helper()
	p, err := loadCompose(filepath.Join(repoRoot, ".env.example"), "*")
	if err != nil {
		t.Fatalf("docker compose config: %v", err)
	}
	return composeOf(t, p)
}

func composeOf(t *testing.T, p *types.Project) composeFile {
	t.Helper()
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	rel := func(path string) string {
		r, err := filepath.Rel(root, path)
		if err != nil || strings.HasPrefix(r, "..") {
			return path // outside the repository: left absolute
		}
		return "./" + filepath.ToSlash(r)
	}
	c := composeFile{Services: map[string]composeService{}, Volumes: map[string]bool{}}
	for name := range p.Volumes {
		c.Volumes[name] = true
	}
	all := maps.Clone(p.Services)
	maps.Copy(all, p.DisabledServices)
	for name, s := range all {
		cs := composeService{
			Image: s.Image, Hostname: s.Hostname, Profiles: s.Profiles,
			Environment: map[string]string{}, Ports: s.Ports, DependsOn: s.DependsOn,
		}
		if s.Build != nil {
			cs.Build = rel(s.Build.Context)
		}
		for k, v := range s.Environment {
			if v != nil {
				cs.Environment[k] = *v
			}
		}
		for _, v := range s.Volumes {
			m := mount{Source: v.Source, Target: v.Target, Bind: v.Type == types.VolumeTypeBind}
			if m.Bind {
				m.Source = rel(v.Source)
			}
			cs.Mounts = append(cs.Mounts, m)
		}
		if s.HealthCheck != nil {
			cs.Healthcheck = s.HealthCheck.Test
		}
		c.Services[name] = cs
	}
	for _, name := range []string{"openldap", "mysql", "vmaild"} {
		if _, ok := c.Services[name]; !ok {
			t.Fatalf("docker-compose.yml: no service %s", name)
		}
	}
	return c
}

// composeConfig loads the vmaild.yaml the vmaild service mounts, with the
// service's environment, as vmaild in the container would.
func composeConfig(t *testing.T, c composeFile) Config {
	t.Helper()
	svc := c.Services["vmaild"]
	target := svc.Environment["VMAILD_CONFIG"]
	if target == "" {
		t.Fatal("vmaild service: VMAILD_CONFIG not set, so `docker compose exec vmaild vmaild …` would not read the configuration")
	}
	m, ok := svc.mountAt(target)
	if !ok || !m.isBind() {
		t.Fatalf("vmaild service: nothing mounted at VMAILD_CONFIG=%s", target)
	}
	for k, v := range svc.Environment {
		if strings.HasPrefix(k, envPrefix+"_") {
			t.Setenv(k, v)
		}
	}
	cfg, err := loadConfig(filepath.Join(repoRoot, m.Source), nil)
	if err != nil {
		t.Fatalf("%s: %v", m.Source, err)
	}
	return cfg
}

func TestComposeEnvironmentKeys(t *testing.T) {
	c := readCompose(t)
	keys := map[string]bool{"VMAILD_CONFIG": true, "VMAILD_DATA": true}
	for _, k := range configKeys(defaultConfig()) {
		keys[k.Env] = true
	}
	for k := range c.Services["vmaild"].Environment {
		if !keys[k] {
			t.Errorf("vmaild service sets %s, which is no configuration key (see CONFIG.md)", k)
		}
	}
}

func TestComposeConfigLoads(t *testing.T) {
	c := readCompose(t)
	cfg := composeConfig(t, c)
	if cfg.UserDB.Accounts != "ldap" || cfg.SQL.Driver != "mysql" {
		t.Errorf("compose runs accounts=%s, sql.driver=%s; want ldap and mysql", cfg.UserDB.Accounts, cfg.SQL.Driver)
	}
	if h := c.Services["vmaild"].Hostname; h != "" && h != cfg.Hostname {
		t.Errorf("container hostname %s, vmaild hostname %s", h, cfg.Hostname)
	}
	a := cfg.LDAP.Attributes
	for key, got := range map[string]string{
		"quota_bytes": a.QuotaBytes, "quota_messages": a.QuotaMessages, "active": a.Active, "maildir": a.Maildir,
		"sender_address": a.SenderAddress,
	} {
		if got == "" {
			t.Errorf("ldap.attributes.%s unset: the openldap service loads the vmaild schema", key)
		}
		if !schemaDefines(t, got) {
			t.Errorf("ldap.attributes.%s: %s is not in schema/ldap/vmaild.ldif", key, got)
		}
	}
}

func schemaDefines(t *testing.T, attr string) bool {
	b, err := os.ReadFile(filepath.Join(repoRoot, "schema", "ldap", "vmaild.ldif"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Contains(string(b), "NAME '"+attr+"'")
}

// TestComposeServices: the servers the configuration names are services
// of the compose file, reached with the credentials those services create.
func TestComposeServices(t *testing.T) {
	c := readCompose(t)
	cfg := composeConfig(t, c)
	svc := c.Services["vmaild"]

	for _, dep := range []string{"openldap", "mysql"} {
		if svc.DependsOn[dep].Condition != types.ServiceConditionHealthy {
			t.Errorf("vmaild must depend on %s being healthy", dep)
		}
		if len(c.Services[dep].Healthcheck) == 0 {
			t.Errorf("%s has no healthcheck to wait for", dep)
		}
	}

	ldapEnv := c.Services["openldap"].Environment
	if len(cfg.LDAP.URLs) == 0 {
		t.Fatal("ldap.urls empty")
	}
	for _, raw := range cfg.LDAP.URLs {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := c.Services[u.Hostname()]; !ok || u.Hostname() != "openldap" {
			t.Errorf("ldap.urls %s: host %q is not the openldap service", raw, u.Hostname())
		}
		if u.Scheme != "ldap" || (u.Port() != "" && u.Port() != "389") {
			t.Errorf("ldap.urls %s: the openldap service serves ldap:// on 389", raw)
		}
	}
	suffix := ldapEnv["LDAP_SUFFIX"]
	if cfg.LDAP.BindDN != "cn=vmaild,"+suffix {
		t.Errorf("ldap.bind_dn %s: the openldap service creates cn=vmaild,%s for vmaild", cfg.LDAP.BindDN, suffix)
	}
	if cfg.LDAP.BindPassword == "" || cfg.LDAP.BindPassword != ldapEnv["LDAP_VMAILD_PASSWORD"] {
		t.Errorf("ldap.bind_password (VMAILD_LDAP_BIND_PASSWORD) differs from the openldap service's LDAP_VMAILD_PASSWORD")
	}
	if cfg.LDAP.BaseDN != "ou=people,"+suffix {
		t.Errorf("ldap.base_dn %s: the openldap service grants vmaild ou=people,%s", cfg.LDAP.BaseDN, suffix)
	}

	dsn, err := mysql.ParseDSN(cfg.SQL.DSN)
	if err != nil {
		t.Fatalf("sql.dsn: %v", err)
	}
	host, port, err := net.SplitHostPort(dsn.Addr)
	if err != nil {
		t.Fatalf("sql.dsn address %q: %v", dsn.Addr, err)
	}
	if _, ok := c.Services[host]; !ok || host != "mysql" || port != "3306" || dsn.Net != "tcp" {
		t.Errorf("sql.dsn reaches %s %s, not the mysql service on tcp 3306", dsn.Net, dsn.Addr)
	}
	myEnv := c.Services["mysql"].Environment
	for what, pair := range map[string][2]string{
		"database": {dsn.DBName, myEnv["MYSQL_DATABASE"]},
		"user":     {dsn.User, myEnv["MYSQL_USER"]},
		"password": {dsn.Passwd, myEnv["MYSQL_PASSWORD"]},
	} {
		if pair[0] == "" || pair[0] != pair[1] {
			t.Errorf("sql.dsn %s %q differs from what the mysql service creates (%q)", what, pair[0], pair[1])
		}
	}
}

// standardPorts are the ports each main listener is published on.
var standardPorts = map[string]int{
	"smtp": 25, "submission": 587, "submissions": 465,
	"imap": 143, "imaps": 993, "pop3": 110, "pop3s": 995,
}

// listenPorts returns the listener name of every TCP port vmaild listens
// on, metrics included.
func listenPorts(t *testing.T, cfg Config, requireWildcard bool) map[int]string {
	t.Helper()
	addrs := map[string]string{
		"smtp": cfg.Listen.SMTP.Address, "submission": cfg.Listen.Submission.Address,
		"submissions": cfg.Listen.Submissions.Address, "lmtp": cfg.Listen.LMTP.Address,
		"imap": cfg.Listen.IMAP.Address, "imaps": cfg.Listen.IMAPS.Address,
		"pop3": cfg.Listen.POP3.Address, "pop3s": cfg.Listen.POP3S.Address,
		"metrics": cfg.Metrics.Address,
	}
	ports := map[int]string{}
	for name, addr := range addrs {
		if addr == "" || strings.HasPrefix(addr, "/") {
			continue
		}
		host, p, err := net.SplitHostPort(addr)
		if err != nil {
			t.Errorf("%s address %q: %v", name, addr, err)
			continue
		}
		if requireWildcard && host != "" && host != "0.0.0.0" && host != "::" {
			t.Errorf("%s listens on %s: a published port reaches the container's own interface, so listen on all (\":%s\")", name, addr, p)
		}
		n, _ := strconv.Atoi(p)
		ports[n] = name
	}
	return ports
}

func TestComposePorts(t *testing.T) {
	c := readCompose(t)
	cfg := composeConfig(t, c)
	listening := listenPorts(t, cfg, true)

	publishedBy := map[string]published{}
	for _, p := range c.Services["vmaild"].published(t) {
		name, ok := listening[p.Container]
		if !ok {
			t.Errorf("port %d:%d: vmaild listens on no port %d", p.Host, p.Container, p.Container)
			continue
		}
		publishedBy[name] = p
	}
	for name, std := range standardPorts {
		p, ok := publishedBy[name]
		switch {
		case !ok:
			t.Errorf("listener %s is not published", name)
		case p.Host != std:
			t.Errorf("listener %s is published on %d, want %d", name, p.Host, std)
		}
	}

	_, metricsPort, _ := net.SplitHostPort(cfg.Metrics.Address)
	test := strings.Join(c.Services["vmaild"].Healthcheck, " ")
	if want := "127.0.0.1:" + metricsPort + "/healthz"; !strings.Contains(test, want) {
		t.Errorf("vmaild healthcheck %q does not ask %s (metrics.address %s)", test, want, cfg.Metrics.Address)
	}
}

func TestComposeMounts(t *testing.T) {
	c := readCompose(t)
	for name, svc := range c.Services {
		if ctx := svc.Build; ctx != "" {
			if _, err := os.Stat(filepath.Join(repoRoot, ctx, "Dockerfile")); err != nil {
				t.Errorf("%s: build context %s has no Dockerfile", name, ctx)
			}
		}
		for _, m := range svc.Mounts {
			if !m.isBind() {
				if _, ok := c.Volumes[m.Source]; !ok {
					t.Errorf("%s: volume %s is not declared under volumes:", name, m.Source)
				}
				continue
			}
			if strings.HasPrefix(m.Source, "/") {
				t.Errorf("%s: %s is a host path outside the repository", name, m.Source)
				continue
			}
			if _, err := os.Stat(filepath.Join(repoRoot, m.Source)); err != nil {
				t.Errorf("%s: mounted %s does not exist in the repository", name, m.Source)
			}
		}
	}
}

// TestComposeMySQLInit: every migration is mounted for the image to run,
// and recorded in schema_version by the file that runs after them, so
// `vmaild db migrate` neither misses nor repeats one.
func TestComposeMySQLInit(t *testing.T) {
	const initdb = "/docker-entrypoint-initdb.d/"
	c := readCompose(t)
	migrations, err := schema.Migrations("mysql")
	if err != nil {
		t.Fatal(err)
	}
	var initFiles []string
	var seed mount
	for _, m := range c.Services["mysql"].Mounts {
		if !strings.HasPrefix(m.Target, initdb) {
			continue
		}
		initFiles = append(initFiles, path.Base(m.Target))
		if !strings.HasPrefix(m.Source, "./schema/mysql/") {
			seed = m
		}
	}
	sort.Strings(initFiles)
	if seed.Source == "" || len(initFiles) == 0 || initFiles[len(initFiles)-1] != path.Base(seed.Target) {
		t.Fatalf("mysql: the compose seed file must be mounted into %s and sort after the schema files: %v", initdb, initFiles)
	}
	b, err := os.ReadFile(filepath.Join(repoRoot, seed.Source))
	if err != nil {
		t.Fatal(err)
	}
	seedSQL := string(b)
	for _, mig := range migrations {
		m, ok := c.Services["mysql"].mountAt(initdb + mig.Name)
		if !ok || m.Source != "./schema/mysql/"+mig.Name {
			t.Errorf("mysql: schema/mysql/%s is not mounted at %s%s", mig.Name, initdb, mig.Name)
		}
		if rec := fmt.Sprintf("(%d, '%s')", mig.Version, mig.Name); !strings.Contains(seedSQL, rec) {
			t.Errorf("%s does not record %s in schema_version", seed.Source, rec)
		}
	}

	// Accounts come from LDAP, but mail is local only for domains in SQL.
	for _, e := range seedEntries(t, c) {
		for _, addr := range e.Values("mail") {
			_, domain, _ := strings.Cut(addr, "@")
			if !strings.Contains(seedSQL, "('"+domain+"')") {
				t.Errorf("%s has mail %s, but %s does not add the domain %s", e.DN, addr, seed.Source, domain)
			}
		}
	}
}

// seedEntries are the entries the openldap service loads, in order.
func seedEntries(t *testing.T, c composeFile) []ldif.Entry {
	t.Helper()
	svc := c.Services["openldap"]
	dir, ok := svc.mountAt("/vmaild/ldif")
	if !ok {
		t.Fatal("openldap: ldif/ is not mounted at /vmaild/ldif")
	}
	var entries []ldif.Entry
	for _, name := range strings.Fields(svc.Environment["LDAP_SEED_FILES"]) {
		f, err := os.Open(filepath.Join(repoRoot, dir.Source, name))
		if err != nil {
			t.Fatalf("openldap: LDAP_SEED_FILES: %v", err)
		}
		es, err := ldif.Parse(f)
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		entries = append(entries, es...)
	}
	return entries
}

// TestComposeOpenLDAPInit: the image creates no entries but the service
// account, so the seed files must bring the base entry first, every parent
// before its children, and nothing twice.
func TestComposeOpenLDAPInit(t *testing.T) {
	c := readCompose(t)
	svc := c.Services["openldap"]
	suffix := svc.Environment["LDAP_SUFFIX"]
	if m, ok := svc.mountAt("/vmaild/schema"); !ok {
		t.Error("openldap: schema/ldap is not mounted at /vmaild/schema")
	} else if _, err := os.Stat(filepath.Join(repoRoot, m.Source, "vmaild.ldif")); err != nil {
		t.Errorf("openldap: %v", err)
	}

	entries := seedEntries(t, c)
	if len(entries) == 0 || !strings.EqualFold(entries[0].DN, suffix) {
		t.Fatalf("the first seed entry must be the base %s", suffix)
	}
	seen := map[string]bool{strings.ToLower("cn=vmaild," + suffix): true}
	for i, e := range entries {
		dn := strings.ToLower(e.DN)
		if seen[dn] {
			t.Errorf("%s is created twice (the entrypoint adds cn=vmaild,%s itself)", e.DN, suffix)
		}
		seen[dn] = true
		if i == 0 {
			continue
		}
		if _, parent, _ := strings.Cut(dn, ","); !seen[parent] {
			t.Errorf("%s is loaded before its parent", e.DN)
		}
	}

	// The entrypoint reads every variable the service sets.
	script, err := os.ReadFile(filepath.Join(repoRoot, "deploy", "compose", "openldap", "entrypoint.sh"))
	if err != nil {
		t.Fatal(err)
	}
	for k := range svc.Environment {
		if !strings.Contains(string(script), "${"+k+":") {
			t.Errorf("openldap service sets %s, which entrypoint.sh does not read", k)
		}
	}
}

// dockerfile is the instructions of the Dockerfile, continuation lines
// joined, comments dropped.
func dockerfile(t *testing.T) [][]string {
	t.Helper()
	f, err := os.Open(filepath.Join(repoRoot, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out [][]string
	var cur strings.Builder
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "#") || (line == "" && cur.Len() == 0) {
			continue
		}
		if strings.HasSuffix(line, `\`) {
			cur.WriteString(strings.TrimSuffix(line, `\`) + " ")
			continue
		}
		cur.WriteString(line)
		if fields := strings.Fields(cur.String()); len(fields) > 0 {
			fields[0] = strings.ToUpper(fields[0])
			out = append(out, fields)
		}
		cur.Reset()
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func instructionArgs(df [][]string, name string) [][]string {
	var out [][]string
	for _, ins := range df {
		if ins[0] == name {
			out = append(out, ins[1:])
		}
	}
	return out
}

// TestComposeDockerfile: the image exposes the ports of both the compose
// configuration and the zero-configuration default (it serves either), is
// built with the Go of go.mod, and runs unprivileged with the paths the
// compose file mounts.
func TestComposeDockerfile(t *testing.T) {
	c := readCompose(t)
	df := dockerfile(t)

	var exposed []int
	for _, args := range instructionArgs(df, "EXPOSE") {
		for _, a := range args {
			p, _, _ := strings.Cut(a, "/")
			n, err := strconv.Atoi(p)
			if err != nil {
				t.Errorf("EXPOSE %s: not a port", a)
			}
			exposed = append(exposed, n)
		}
	}
	sort.Ints(exposed)
	portsOf := func(ports map[int]string) []int {
		var ps []int
		for p := range ports {
			ps = append(ps, p)
		}
		sort.Ints(ps)
		return ps
	}
	if want := portsOf(listenPorts(t, composeConfig(t, c), true)); !slices.Equal(exposed, want) {
		t.Errorf("Dockerfile EXPOSE %v, deploy/compose/vmaild.yaml listens on %v", exposed, want)
	}
	if want := portsOf(listenPorts(t, defaultConfig(), false)); !slices.Equal(exposed, want) {
		t.Errorf("Dockerfile EXPOSE %v, vmaild's defaults listen on %v", exposed, want)
	}

	gomod, err := os.ReadFile(filepath.Join(repoRoot, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	goVersion := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(gomod)
	froms := instructionArgs(df, "FROM")
	if len(froms) < 2 || goVersion == nil || !strings.HasPrefix(froms[0][0], "golang:"+string(goVersion[1])) {
		t.Errorf("the build stage must be golang:%s (go.mod), have %v", goVersion[1], froms)
	}

	env := map[string]string{}
	for _, args := range instructionArgs(df, "ENV") {
		for _, a := range args {
			if k, v, ok := strings.Cut(a, "="); ok {
				env[k] = v
			}
		}
	}
	vm := c.Services["vmaild"]
	if _, ok := vm.mountAt(env["VMAILD_CONFIG"]); !ok || env["VMAILD_CONFIG"] != vm.Environment["VMAILD_CONFIG"] {
		t.Errorf("image VMAILD_CONFIG=%s, compose mounts the configuration at %s", env["VMAILD_CONFIG"], vm.Environment["VMAILD_CONFIG"])
	}
	if m, ok := vm.mountAt(env["VMAILD_DATA"]); !ok || m.isBind() {
		t.Errorf("image VMAILD_DATA=%s: compose mounts no volume there", env["VMAILD_DATA"])
	}
	if !slices.ContainsFunc(instructionArgs(df, "VOLUME"), func(a []string) bool { return slices.Contains(a, env["VMAILD_DATA"]) }) {
		t.Errorf("image declares no VOLUME %s", env["VMAILD_DATA"])
	}
	users := instructionArgs(df, "USER")
	if len(users) == 0 || users[len(users)-1][0] == "root" || users[len(users)-1][0] == "0" {
		t.Errorf("the image must run as an unprivileged user, USER %v", users)
	}
	for _, args := range instructionArgs(df, "COPY") {
		if strings.HasPrefix(args[0], "--from") {
			continue
		}
		for _, src := range args[:len(args)-1] {
			if _, err := os.Stat(filepath.Join(repoRoot, src)); err != nil {
				t.Errorf("COPY %s: %v", src, err)
			}
		}
	}
	// The image's own configuration must keep the zero-config default.
	if _, err := loadConfig(filepath.Join(repoRoot, "deploy", "vmaild.yaml"), nil); err != nil {
		t.Errorf("deploy/vmaild.yaml: %v", err)
	}

	_, metricsPort, _ := net.SplitHostPort(defaultConfig().Metrics.Address)
	hc := strings.Join(instructionArgs(df, "HEALTHCHECK")[0], " ")
	if !strings.Contains(hc, "127.0.0.1:"+metricsPort+"/healthz") {
		t.Errorf("HEALTHCHECK %s does not ask the default metrics listener", hc)
	}
}

// TestComposeSystemdUnitAgrees: the unit uses the image's paths and user,
// and may write where vmaild keeps its data.
func TestComposeSystemdUnitAgrees(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot, "deploy", "vmaild.service"))
	if err != nil {
		t.Fatal(err)
	}
	unit := map[string][]string{}
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, "[") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Errorf("vmaild.service: %q is no key=value", line)
			continue
		}
		unit[k] = append(unit[k], v)
	}
	env := map[string]string{}
	for _, e := range unit["Environment"] {
		k, v, _ := strings.Cut(e, "=")
		env[k] = v
	}
	df := dockerfile(t)
	imageEnv := map[string]string{}
	for _, args := range instructionArgs(df, "ENV") {
		for _, a := range args {
			if k, v, ok := strings.Cut(a, "="); ok {
				imageEnv[k] = v
			}
		}
	}
	for _, k := range []string{"VMAILD_CONFIG", "VMAILD_DATA"} {
		if env[k] == "" || env[k] != imageEnv[k] {
			t.Errorf("vmaild.service %s=%s, image %s", k, env[k], imageEnv[k])
		}
	}
	if !slices.Contains(unit["ReadWritePaths"], env["VMAILD_DATA"]) {
		t.Errorf("vmaild.service: VMAILD_DATA %s is not in ReadWritePaths %v", env["VMAILD_DATA"], unit["ReadWritePaths"])
	}
	if unit["StateDirectory"] == nil || "/var/lib/"+unit["StateDirectory"][0] != env["VMAILD_DATA"] {
		t.Errorf("vmaild.service: StateDirectory %v does not create %s", unit["StateDirectory"], env["VMAILD_DATA"])
	}
	users := instructionArgs(df, "USER")
	if len(unit["User"]) != 1 || len(users) == 0 || unit["User"][0] != users[len(users)-1][0] {
		t.Errorf("vmaild.service User %v, image USER %v", unit["User"], users)
	}
	for _, want := range []string{"AmbientCapabilities=CAP_NET_BIND_SERVICE", "ExecReload=/bin/kill -HUP $MAINPID", "ProtectSystem=strict", "NoNewPrivileges=yes"} {
		k, v, _ := strings.Cut(want, "=")
		if !slices.Contains(unit[k], v) {
			t.Errorf("vmaild.service lacks %s", want)
		}
	}
}

// TestComposeConfigLoadsEveryProfile: `docker compose config` passes, with
// the values of .env.example, for the default services and with each
// profile; the webmail profile is off unless asked for.
func TestComposeConfigLoadsEveryProfile(t *testing.T) {
	env := filepath.Join(repoRoot, ".env.example")
	for _, profiles := range [][]string{nil, {"webmail"}, {"*"}} {
		p, err := loadCompose(env, profiles...)
		if err != nil {
			t.Errorf("docker compose --env-file .env.example %v config: %v", profiles, err)
			continue
		}
		_, on := p.Services["roundcube"]
		if want := len(profiles) > 0; on != want {
			t.Errorf("profiles %v: roundcube enabled %v, want %v", profiles, on, want)
		}
	}
}

// TestComposePortsLoopbackByDefault: with .env.example as it is, every
// published port of every service listens on the host's loopback only;
// VMAILD_BIND and WEBMAIL_BIND open the mail and webmail ports, never
// metrics.
func TestComposePortsLoopbackByDefault(t *testing.T) {
	c := readCompose(t)
	n := 0
	for name, svc := range c.Services {
		for _, p := range svc.Ports {
			n++
			if p.HostIP != "127.0.0.1" {
				t.Errorf("%s publishes %s:%d on host address %q, want 127.0.0.1 unless the admin opts in", name, p.Published, p.Target, p.HostIP)
			}
		}
	}
	if n == 0 {
		t.Fatal("no published port")
	}

	p, err := loadCompose(writeEnv(t, map[string]string{"VMAILD_BIND": "0.0.0.0", "WEBMAIL_BIND": "0.0.0.0"}), "*")
	if err != nil {
		t.Fatal(err)
	}
	opened := composeOf(t, p)
	cfg := composeConfig(t, opened)
	listening := listenPorts(t, cfg, true)
	for name, svc := range opened.Services {
		for _, port := range svc.Ports {
			want := "0.0.0.0"
			if name == "vmaild" && listening[int(port.Target)] == "metrics" {
				want = "127.0.0.1"
			}
			if port.HostIP != want {
				t.Errorf("VMAILD_BIND=0.0.0.0: %s publishes %d on %q, want %s", name, port.Target, port.HostIP, want)
			}
		}
	}
}

// placeholder is the value .env.example gives every secret: refused by the
// openldap entrypoint and replaced by deploy/compose/init-env.sh.
const placeholder = "change-me"

var requiredVar = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*):\?[^}]*\}`)

// TestComposeNoSecretCommitted: the secrets compose uses are required
// variables, each named in .env.example with the placeholder only, so that
// compose refuses to start without them; no deployment file, and no file
// git tracks outside the tests, holds a password.
func TestComposeNoSecretCommitted(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(repoRoot, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	required := map[string]bool{}
	for _, line := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		for _, m := range requiredVar.FindAllStringSubmatch(line, -1) {
			required[m[1]] = true
		}
	}
	example := map[string]string{}
	for _, line := range strings.Split(envExample(t), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			example[k] = v
		}
	}
	for name := range required {
		if example[name] != placeholder {
			t.Errorf(".env.example: %s=%q, want the placeholder %s", name, example[name], placeholder)
		}
		// Without it compose refuses, naming it.
		if _, err := loadCompose(writeEnv(t, nil, name), "*"); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("docker compose config without %s: %v, want an error naming it", name, err)
		}
	}
	for name, v := range example {
		if v == placeholder && !required[name] {
			t.Errorf(".env.example: %s is a secret that docker-compose.yml does not require (${%s:?…})", name, name)
		}
	}

	// Every password-like value a service gets comes from a required
	// variable (so it is the placeholder here), or is empty and made by
	// the image.
	secretKey := regexp.MustCompile(`(?i)(password|secret|des_key|_dsn)$`)
	switches := map[string]bool{"MYSQL_RANDOM_ROOT_PASSWORD": true} // "yes": no password at all
	c := readCompose(t)
	for name, svc := range c.Services {
		for k, v := range svc.Environment {
			if !secretKey.MatchString(k) || switches[k] || v == "" {
				continue
			}
			if !strings.Contains(v, placeholder) {
				t.Errorf("%s: %s=%q is a literal secret; take it from a required variable of .env", name, k, v)
			}
		}
	}

	tracked := gitFiles(t)
	if slices.Contains(tracked, ".env") {
		t.Error(".env is tracked by git: it holds the secrets")
	}
	for _, ignore := range []string{".gitignore", ".dockerignore"} {
		b, err := os.ReadFile(filepath.Join(repoRoot, ignore))
		if err != nil {
			t.Fatal(err)
		}
		if !regexp.MustCompile(`(?m)^/?\.env$`).Match(b) {
			t.Errorf("%s does not list .env", ignore)
		}
	}

	// The old demo defaults, and password keys with a literal value, in
	// anything but tests (whose private servers have passwords of their
	// own). A placeholder is an empty value, change-me, a variable, an
	// <angle-bracketed> hint, the word secret of an example, or the name of
	// the attribute that holds password hashes.
	demo := []string{"admin-secret", "vmaild-secret", "root-secret"}
	// A key, not a variable reference like ${MYSQL_PASSWORD:?…}.
	passwordKey := regexp.MustCompile(`(?i)(?:^|[^\w{$])([a-z_]*password)\s*[:=]\s*['"]?([^'"\s#]*)`)
	isPlaceholder := func(v string) bool {
		return v == "" || strings.HasPrefix(v, placeholder) || strings.HasPrefix(v, "$") ||
			strings.HasPrefix(v, "<") || v == "secret" || v == "userPassword" || strings.HasPrefix(v, "VMAILD_") ||
			strings.HasPrefix(v, "{") || strings.HasPrefix(v, ">") || strings.HasPrefix(v, "|") || strings.HasPrefix(v, "…")
	}
	checked := 0
	for _, f := range tracked {
		if strings.HasSuffix(f, "_test.go") || strings.HasPrefix(f, "internal/") || strings.Contains(f, "/testdata/") || f == "go.sum" {
			continue
		}
		b, err := os.ReadFile(filepath.Join(repoRoot, f))
		if err != nil {
			t.Fatal(err)
		}
		checked++
		for _, d := range demo {
			if bytes.Contains(b, []byte(d)) {
				t.Errorf("%s contains the old demo password %s", f, d)
			}
		}
		if !deploymentFile(f) {
			continue
		}
		for i, line := range strings.Split(string(b), "\n") {
			for _, m := range passwordKey.FindAllStringSubmatch(line, -1) {
				if !isPlaceholder(m[2]) && !switches[m[1]] {
					t.Errorf("%s:%d: %s has the literal value %q", f, i+1, m[1], m[2])
				}
			}
		}
	}
	if checked < 20 {
		t.Fatalf("only %d tracked files checked", checked)
	}
}

// deploymentFile: the files an admin deploys from, scanned for password
// keys with literal values.
func deploymentFile(f string) bool {
	return strings.HasPrefix(f, "deploy/") || f == "docker-compose.yml" || f == "Dockerfile" || f == ".env.example" || f == "README.md"
}

func gitFiles(t *testing.T) []string {
	t.Helper()
	cmd := exec.Command("git", "ls-files", "-z")
	cmd.Dir = repoRoot
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	var files []string
	for _, f := range strings.Split(string(out), "\x00") {
		if f != "" {
			files = append(files, f)
		}
	}
	return files
}

// TestComposeSeedWithoutPasswords: the openldap service loads the example
// accounts without their published passwords, and refuses the placeholder
// as its own.
func TestComposeSeedWithoutPasswords(t *testing.T) {
	script := filepath.Join(repoRoot, "deploy", "compose", "openldap", "entrypoint.sh")
	b, err := os.ReadFile(script)
	if err != nil {
		t.Fatal(err)
	}
	fn := regexp.MustCompile(`(?ms)^without_passwords\(\) \{.*?^\}`).Find(b)
	if fn == nil {
		t.Fatal("entrypoint.sh: no without_passwords function")
	}
	c := readCompose(t)
	svc := c.Services["openldap"]
	dir, _ := svc.mountAt("/vmaild/ldif")
	for _, name := range strings.Fields(svc.Environment["LDAP_SEED_FILES"]) {
		file := filepath.Join(repoRoot, dir.Source, name)
		out, err := exec.Command("sh", "-c", string(fn)+"\nwithout_passwords \"$1\"", "sh", file).Output()
		if err != nil {
			t.Fatalf("without_passwords %s: %v", name, err)
		}
		entries, err := ldif.Parse(bytes.NewReader(out))
		if err != nil {
			t.Fatalf("%s without passwords: %v", name, err)
		}
		orig, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		want, err := ldif.Parse(bytes.NewReader(orig))
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) != len(want) {
			t.Errorf("%s: %d entries without passwords, %d with", name, len(entries), len(want))
		}
		for _, e := range entries {
			if len(e.Values("userPassword")) > 0 {
				t.Errorf("%s: %s keeps its userPassword", name, e.DN)
			}
		}
	}

	cmd := exec.Command("sh", script)
	cmd.Env = append(os.Environ(), "LDAP_ADMIN_PASSWORD="+placeholder, "LDAP_VMAILD_PASSWORD=x", "LDAP_STATE_DIR="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "LDAP_ADMIN_PASSWORD") {
		t.Errorf("entrypoint.sh with the placeholder password: %v, %s; want a refusal", err, out)
	}
}

// TestComposeWebmail: Roundcube (profile webmail) logs in to vmaild's IMAP
// and sends through its submission listener, on the ports vmaild listens
// on in its container, with TLS as those listeners offer it.
func TestComposeWebmail(t *testing.T) {
	c := readCompose(t)
	rc, ok := c.Services["roundcube"]
	if !ok {
		t.Fatal("no roundcube service")
	}
	if !slices.Equal(rc.Profiles, []string{"webmail"}) {
		t.Errorf("roundcube profiles %v, want [webmail]", rc.Profiles)
	}
	if !strings.HasPrefix(rc.Image, "roundcube/roundcubemail:") {
		t.Errorf("roundcube image %s, want the official roundcube/roundcubemail", rc.Image)
	}
	if rc.DependsOn["vmaild"].Condition != types.ServiceConditionHealthy {
		t.Error("roundcube must wait for vmaild to be healthy")
	}
	cfg := composeConfig(t, c)
	listening := listenPorts(t, cfg, true)
	for _, tc := range []struct {
		host, port string
		tls        map[string]string // URL scheme → the listener it needs
	}{
		{"ROUNDCUBEMAIL_DEFAULT_HOST", "ROUNDCUBEMAIL_DEFAULT_PORT", map[string]string{"tls": "imap", "ssl": "imaps"}},
		{"ROUNDCUBEMAIL_SMTP_SERVER", "ROUNDCUBEMAIL_SMTP_PORT", map[string]string{"tls": "submission", "ssl": "submissions"}},
	} {
		u, err := url.Parse(rc.Environment[tc.host])
		if err != nil || u.Host == "" {
			t.Errorf("roundcube %s=%q: want tls://vmaild or ssl://vmaild", tc.host, rc.Environment[tc.host])
			continue
		}
		if _, ok := c.Services[u.Hostname()]; !ok || u.Hostname() != "vmaild" {
			t.Errorf("roundcube %s=%s: not the vmaild service", tc.host, u)
		}
		want, ok := tc.tls[u.Scheme]
		if !ok {
			t.Errorf("roundcube %s=%s: without tls:// or ssl:// vmaild refuses the password", tc.host, u)
			continue
		}
		port, _ := strconv.Atoi(rc.Environment[tc.port])
		if got := listening[port]; got != want {
			t.Errorf("roundcube %s=%s, %s=%s: vmaild's %s listener is not there (it has %q)", tc.host, u, tc.port, rc.Environment[tc.port], want, got)
		}
	}
	m, ok := rc.mountAt("/var/roundcube/config")
	if !ok || !m.isBind() {
		t.Fatal("roundcube: deploy/compose/roundcube is not mounted at /var/roundcube/config")
	}
	php, _ := filepath.Glob(filepath.Join(repoRoot, m.Source, "*.php"))
	if len(php) == 0 {
		t.Errorf("roundcube: no *.php in %s for the image to include", m.Source)
	}
	for _, f := range php {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, key := range []string{"smtp_user", "imap_conn_options", "smtp_conn_options"} {
			if !strings.Contains(string(b), "$config['"+key+"']") {
				t.Errorf("%s does not set %s", f, key)
			}
		}
	}
}

// TestComposeOpenLDAPEntrypoint runs the openldap service's entrypoint
// with the host's slapd as the container would: the directory it makes
// lets vmaild's service account in with the password of .env, and the seed
// accounts have no password.
func TestComposeOpenLDAPEntrypoint(t *testing.T) {
	testsrv.RequireBinary(t, "slapd")
	testsrv.RequireBinary(t, "slapadd")
	testsrv.RequireBinary(t, "slappasswd")
	ldapsearch := testsrv.RequireBinary(t, "ldapsearch")
	if os.Geteuid() != 0 {
		t.Skip("the entrypoint hands slapd to LDAP_USER as in the container, which needs root")
	}
	c := readCompose(t)
	svc := c.Services["openldap"]
	suffix := svc.Environment["LDAP_SUFFIX"]
	schemaDir, _ := svc.mountAt("/vmaild/schema")
	ldifDir, _ := svc.mountAt("/vmaild/ldif")
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	url := fmt.Sprintf("ldap://127.0.0.1:%d", testsrv.FreePort(t))
	const servicePassword = "entrypoint-test-password"

	cmd := exec.Command("sh", filepath.Join(repoRoot, "deploy", "compose", "openldap", "entrypoint.sh"))
	cmd.Env = append(os.Environ(),
		"LDAP_SUFFIX="+suffix,
		"LDAP_ADMIN_PASSWORD=admin-"+servicePassword,
		"LDAP_VMAILD_PASSWORD="+servicePassword,
		"LDAP_SEED_FILES="+svc.Environment["LDAP_SEED_FILES"],
		"LDAP_SCHEMA_DIR="+filepath.Join(root, schemaDir.Source),
		"LDAP_LDIF_DIR="+filepath.Join(root, ldifDir.Source),
		"LDAP_STATE_DIR="+filepath.Join(dir, "state"),
		"LDAP_RUN_DIR="+filepath.Join(dir, "run"),
		"LDAP_URLS="+url,
		"LDAP_USER=root",
	)
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})

	search := func(filter string, attrs ...string) (string, error) {
		args := append([]string{"-x", "-LLL", "-o", "ldif-wrap=no", "-H", url,
			"-D", "cn=vmaild," + suffix, "-w", servicePassword, "-b", suffix, filter}, attrs...)
		out, err := exec.Command(ldapsearch, args...).CombinedOutput()
		return string(out), err
	}
	var out string
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		if out, err = search("(mail=alice@example.com)", "mail", "userPassword"); err == nil {
			break
		}
		select {
		case werr := <-exited:
			exited <- werr
			t.Fatalf("entrypoint.sh exited (%v):\n%s", werr, log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("slapd from entrypoint.sh never let cn=vmaild in: %v %s\nentrypoint: %s", err, out, log.String())
		}
	}
	if !strings.Contains(out, "mail: alice@example.com") {
		t.Fatalf("seeded alice not found: %s", out)
	}
	// cn=vmaild has its own password; no account (an entry with mail) has one.
	if out, err = search("(&(mail=*)(userPassword=*))", "dn"); err != nil || strings.Contains(out, "dn:") {
		t.Errorf("seed entries with a password (%v):\n%s", err, out)
	}
}

// TestDockerComposeConfig runs Docker Compose itself (test.sh builds the
// version tools/compose pins and names it in $VMAILD_COMPOSE): `docker
// compose config` accepts docker-compose.yml with .env.example, with and
// without the webmail profile; every port it publishes is on 127.0.0.1;
// and without the secrets it refuses, naming each one.
func TestDockerComposeConfig(t *testing.T) {
	bin := os.Getenv("VMAILD_COMPOSE")
	if bin == "" {
		bin, _ = exec.LookPath("docker-compose")
	}
	if bin == "" {
		msg := "Docker Compose not found: ./test.sh builds it (tools/compose), or set VMAILD_COMPOSE"
		if os.Getenv("CI") != "" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	compose := func(envFile string, args ...string) ([]byte, error) {
		cmd := exec.Command(bin, append([]string{"--project-directory", repoRoot,
			"-f", filepath.Join(repoRoot, "docker-compose.yml"), "--env-file", envFile}, args...)...)
		// Only the env file speaks: an admin's exported variables must
		// not change what the test sees.
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
		return cmd.Output()
	}
	env := filepath.Join(repoRoot, ".env.example")
	for _, profiles := range [][]string{nil, {"--profile", "webmail"}} {
		out, err := compose(env, append(profiles, "config", "--format", "json")...)
		if err != nil {
			t.Fatalf("docker compose %v config: %v\n%s", profiles, err, stderrOf(err))
		}
		var cfg struct {
			Services map[string]struct {
				Ports []struct {
					HostIP    string `json:"host_ip"`
					Published string `json:"published"`
				} `json:"ports"`
			} `json:"services"`
		}
		if err := json.Unmarshal(out, &cfg); err != nil {
			t.Fatalf("docker compose config --format json: %v", err)
		}
		if _, on := cfg.Services["roundcube"]; on != (profiles != nil) {
			t.Errorf("profiles %v: roundcube enabled %v", profiles, on)
		}
		n := 0
		for name, svc := range cfg.Services {
			for _, p := range svc.Ports {
				n++
				if p.HostIP != "127.0.0.1" {
					t.Errorf("profiles %v: %s publishes %s on %q, want 127.0.0.1", profiles, name, p.Published, p.HostIP)
				}
			}
		}
		if n < 8 {
			t.Errorf("profiles %v: %d published ports, want the seven mail ports and metrics at least", profiles, n)
		}
	}
	empty := filepath.Join(t.TempDir(), "empty.env")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := compose(empty, "config", "--quiet")
	msg := string(stderrOf(err))
	for _, v := range []string{"MYSQL_PASSWORD", "LDAP_ADMIN_PASSWORD", "LDAP_VMAILD_PASSWORD"} {
		if err == nil || !strings.Contains(msg, "set "+v+" in .env") {
			t.Errorf("without secrets: %v, %q; want a refusal naming %s", err, msg, v)
		}
	}
}

// stderrOf is what a failed command wrote on stderr.
func stderrOf(err error) []byte {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.Stderr
	}
	return nil
}
