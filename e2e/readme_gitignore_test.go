package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestGitignoreCoversReadme: every file or directory the README's
// commands create in the working tree (--out DIR, --dir, --data-dir,
// model pull's DIR, go build -o, cat > FILE, the demo's dsae-demo/) is
// ignored by .gitignore, so that following the README leaves `git status`
// clean.
func TestGitignoreCoversReadme(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	ignore, err := os.ReadFile(filepath.Join("..", ".gitignore"))
	if err != nil {
		t.Fatal(err)
	}
	ignored := map[string]bool{}
	for _, l := range strings.Split(string(ignore), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			ignored[strings.Trim(l, "/")] = true
		}
	}
	var blocks []string
	for _, b := range regexp.MustCompile("(?s)```sh\n(.*?)```").FindAllStringSubmatch(string(readme), -1) {
		blocks = append(blocks, b[1])
	}
	if len(blocks) < 4 {
		t.Fatalf("found %d sh blocks in the README", len(blocks))
	}
	created := regexp.MustCompile(`(?:--out|--dir|--data-dir|-o|--png|--loss-png|cat >)\s+(\S+)|dsae model pull \S+ (\S+)`)
	want := map[string]bool{"dsae-demo": true} // dsae demo's default --out
	for _, b := range blocks {
		for _, m := range created.FindAllStringSubmatch(b, -1) {
			p := m[1] + m[2]
			if strings.HasPrefix(p, "/") || strings.HasPrefix(p, "$") {
				continue // outside the working tree
			}
			// The README's worker loop: --data-dir ./w$i for i in 1 2 3.
			for _, i := range []string{"1", "2", "3"} {
				top, _, _ := strings.Cut(strings.TrimPrefix(strings.ReplaceAll(p, "$i", i), "./"), "/")
				want[top] = true
			}
		}
	}
	for _, must := range []string{"out", "s3", "dsae-demo", "acts-sae", "mnist-model", "dsae"} {
		if !want[must] {
			t.Errorf("the README scan missed %s: the pattern no longer matches the README's commands", must)
		}
	}
	for p := range want {
		if !ignored[p] {
			t.Errorf("the README's commands create %s, which .gitignore does not ignore", p)
		}
	}
}
