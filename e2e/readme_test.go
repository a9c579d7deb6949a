package e2e

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dsae/dsae/storage/datafile"
)

// shellBlock is one ```sh block of the README: its first line number, its
// text, and its commands (continued lines joined, comments, blank lines and
// heredoc bodies dropped), each with the lines it spans in text.
type shellBlock struct {
	line   int
	marker string // the <!-- name --> line right before the block, if any
	text   []string
	cmds   []shellCmd
}

type shellCmd struct {
	cmd    string // normalised: one line, single spaces, no trailing comment
	lo, hi int    // text[lo:hi] holds it (and its heredoc body)
}

var reHeredoc = regexp.MustCompile(`<<-?'?([A-Za-z_]+)'?`)

// readmeShellBlocks returns every ```sh block of README.md in order.
func readmeShellBlocks(t *testing.T) []shellBlock {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	var blocks []shellBlock
	var cur *shellBlock
	prev := ""
	for i, line := range strings.Split(string(b), "\n") {
		switch {
		case cur == nil && strings.TrimSpace(line) == "```sh":
			cur = &shellBlock{line: i + 2}
			if p := strings.TrimSpace(prev); strings.HasPrefix(p, "<!--") {
				cur.marker = p
			}
		case cur != nil && strings.TrimSpace(line) == "```":
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil:
			cur.text = append(cur.text, strings.TrimPrefix(line, "  ")) // blocks inside list items are indented
		}
		prev = line
	}
	if cur != nil {
		t.Fatalf("README.md: the ```sh block at line %d is not closed", cur.line)
	}
	for k := range blocks {
		bl := &blocks[k]
		for i := 0; i < len(bl.text); {
			lo, cmd := i, ""
			for ; i < len(bl.text) && strings.HasSuffix(bl.text[i], "\\"); i++ {
				cmd += strings.TrimSuffix(bl.text[i], "\\") + " "
			}
			if i < len(bl.text) {
				cmd += bl.text[i]
				i++
			}
			if m := reHeredoc.FindStringSubmatch(cmd); m != nil {
				for i < len(bl.text) && strings.TrimSpace(bl.text[i]) != m[1] {
					i++
				}
				i++ // the terminator
			}
			cmd = strings.Join(strings.Fields(reComment.ReplaceAllString(cmd, "")), " ")
			if cmd != "" && !strings.HasPrefix(cmd, "#") {
				bl.cmds = append(bl.cmds, shellCmd{cmd: cmd, lo: lo, hi: min(i, len(bl.text))})
			}
		}
	}
	return blocks
}

// readmeElsewhere lists the README commands that this test does not run
// itself, each with the test or CI step that does: a command of the README
// that is neither run here nor listed makes TestReadmeBlocks fail, so the
// README cannot gain an untested command. Keys are command prefixes.
var readmeElsewhere = map[string]string{
	"go run ./cmd/dsae demo":                     "TestDemo runs `dsae demo` with its defaults through the built binary",
	"go test ./...":                              ".ci/run runs it (the README's test command)",
	"go test -short ./...":                       "its packages run in full in .ci/run's go test ./...",
	"go test -tags openblas ./sae/...":           ".ci/run runs it",
	"go test -run 'TestCluster' -v ./e2e/":       "a subset of go test ./..., which .ci/run runs",
	".ci/run":                                    "it is CI itself",
	"go build -tags openblas -o dsae ./cmd/dsae": ".ci/run vets and tests the openblas build; TestReadmeBlocks builds it when libopenblas-dev is installed",
}

// readmeFixtures are the files the README's commands read that a user
// brings: stored activations, as float32 .npy files.
func readmeFixtures(t *testing.T, dir string) {
	t.Helper()
	rng := rand.New(rand.NewPCG(7, 7))
	write := func(name string, rows, d int) {
		x := make([]float32, rows*d)
		for i := range x {
			x[i] = float32(rng.NormFloat64())
		}
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := datafile.WriteNPY(f, rows, d, x); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	write("acts.npy", 2048, 32)
	write("acts-0.npy", 600, 32)
	write("acts-1.npy", 500, 32)
}

var (
	// A trailing comment: " # ..." (the README's commands hold no # in quotes).
	reComment = regexp.MustCompile(`\s+#.*$`)
	reEpochs  = regexp.MustCompile(`--epochs \S+`)
	reSteps   = regexp.MustCompile(`--steps \S+`)
	// Checkpoints within the few steps run.
	reCheckpoint = regexp.MustCompile(`--checkpoint-every \S+`)
)

var reWarmup = regexp.MustCompile(`--warmup-steps (\d+)`)

// shorten makes a README command quick to run: `go run ./cmd/dsae` becomes
// the built dsae on PATH, and training runs a few steps (past the warm-up
// the command asks for, which a schedule requires).
func shorten(cmd string) string {
	cmd = strings.ReplaceAll(cmd, "go run ./cmd/dsae ", "dsae ")
	if strings.HasPrefix(cmd, "dsae train ") && !strings.Contains(cmd, "--resume") { // a resumed run keeps its own steps
		steps := 4
		if m := reWarmup.FindStringSubmatch(cmd); m != nil {
			w, _ := strconv.Atoi(m[1])
			steps = w + 4
		}
		cmd = reCheckpoint.ReplaceAllString(cmd, "--checkpoint-every 2")
		cmd = reEpochs.ReplaceAllString(cmd, "")
		cmd = reSteps.ReplaceAllString(cmd, "")
		cmd = strings.Join(strings.Fields(cmd), " ") + fmt.Sprintf(" --steps %d", steps)
	}
	return cmd
}

// readmeSetup is what a block needs running before it that the README
// sets up in an earlier section: the job-spec example submits to a
// coordinator at 127.0.0.1:7100 with dataset acts in its store.
func readmeSetup(b shellBlock) []string {
	for _, c := range b.cmds {
		if strings.HasPrefix(c.cmd, "dsae job submit") && strings.Contains(c.cmd, "127.0.0.1:7100") {
			return []string{
				"export AWS_ACCESS_KEY_ID=dsae AWS_SECRET_ACCESS_KEY=readme-test-secret-0123456789",
				"export DSAE_S3_ENDPOINT=127.0.0.1:9000 DSAE_CLUSTER_SECRET=$(head -c 32 /dev/urandom | base64)",
				"dsae s3 serve --dir ./s3 --addr 127.0.0.1:9000 &",
				"dsae dataset put acts acts.npy",
				"dsae coordinator --id c1 --data-dir ./c1 --raft-addr 127.0.0.1:7000 --grpc-addr 127.0.0.1:7100 --gossip-addr 127.0.0.1:7200 &",
			}
		}
	}
	return nil
}

// TestReadmeBlocks runs every command block of the README (the cluster
// block has TestReadmeClusterByHand, the rest is listed in
// readmeElsewhere with what runs it): each block in a fresh directory,
// with the built dsae first on PATH, training shortened to a few steps.
// Every command must exit 0.
func TestReadmeBlocks(t *testing.T) {
	skipSlow(t, "every README command block, run as written (training shortened)")
	blocks := readmeShellBlocks(t)
	if len(blocks) < 5 {
		t.Fatalf("README.md has %d ```sh blocks; the parser found fewer than the README holds", len(blocks))
	}
	readmeBlock(t, "cluster-by-hand") // it exists
	covered := map[string]bool{}
	for _, b := range blocks {
		if b.marker == "<!-- cluster-by-hand -->" {
			continue // TestReadmeClusterByHand runs it
		}
		var script []string
		for _, c := range b.cmds {
			if why, ok := elsewhere(c.cmd); ok {
				covered[c.cmd] = true
				t.Logf("README line %d: %q is run elsewhere: %s", b.line+c.lo, c.cmd, why)
				continue
			}
			if reHeredoc.MatchString(c.cmd) {
				script = append(script, b.text[c.lo:c.hi]...) // a heredoc, as written
				continue
			}
			script = append(script, shorten(c.cmd))
		}
		if len(script) == 0 {
			continue
		}
		t.Run(fmt.Sprintf("line%d", b.line), func(t *testing.T) {
			runReadmeScript(t, b.line, readmeSetup(b), script)
		})
	}
	for prefix := range readmeElsewhere {
		found := false
		for c := range covered {
			found = found || strings.HasPrefix(c, prefix)
		}
		if !found {
			t.Errorf("readmeElsewhere lists %q, which no README block holds any more: remove it", prefix)
		}
	}
	// The openblas build command, where the library is installed (.ci/run
	// installs it).
	if libs, _ := filepath.Glob("/usr/lib/*/libopenblas.so"); len(libs) > 0 {
		cmd := exec.Command("go", "build", "-tags", "openblas", "-o", filepath.Join(t.TempDir(), "dsae"), "./cmd/dsae")
		cmd.Dir = ".."
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("README's go build -tags openblas: %v\n%s", err, out)
		}
	} else {
		t.Log("libopenblas-dev is not installed: the README's openblas build is left to .ci/run, which installs it")
	}
}

func elsewhere(cmd string) (string, bool) {
	for prefix, why := range readmeElsewhere {
		if cmd == prefix {
			return why, true
		}
	}
	return "", false
}

// runReadmeScript runs the setup and the commands of one README block in
// order in a fresh directory holding the fixtures, stopping at the first
// failure; background jobs (`&`) are killed at the end.
func runReadmeScript(t *testing.T, line int, setup, cmds []string) {
	dir := t.TempDir()
	readmeFixtures(t, dir)
	script := strings.Join(setup, "\n") + "\nset -x\n" + strings.Join(cmds, "\n")
	out := runShell(t, dir, script, 4*time.Minute, fmt.Sprintf("README block at line %d", line))
	t.Logf("README block at line %d:\n%s", line, tail(out, 1500))
}
