package e2e

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// rankProc is one `dsae bench allreduce-rank` process.
type rankProc struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr bytes.Buffer
	addr   string
	done   chan error
}

func startRank(t *testing.T, args []string) *rankProc {
	t.Helper()
	p := &rankProc{cmd: exec.Command(dsaeBin, args...), done: make(chan error, 1)}
	p.cmd.Stderr = &p.stderr
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.cmd.Process.Kill() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "addr ")
	if err != nil || !ok {
		t.Fatalf("rank printed %q, %v", line, err)
	}
	p.addr = addr
	go func() {
		io.Copy(io.Discard, stdout)
		p.done <- p.cmd.Wait()
	}()
	return p
}

// TestAllReduceRankKilled starts three rank processes of `dsae bench
// allreduce` by hand, lets them run 16 MiB all-reduces, kills one with
// SIGKILL mid-operation and checks that both survivors exit with an error
// naming a broken peer, well within the ring's progress timeout (60 s):
// they see the broken connections, not the silence. For every data path.
func TestAllReduceRankKilled(t *testing.T) {
	skipSlow(t, "a multi-process all-reduce whose ranks are killed")
	const timeout = 60 * time.Second
	for _, variant := range [][]string{{"--unix=true"}, {"--unix=false"}, {"--data-path", "grpc"}} {
		t.Run(strings.Join(variant, " "), func(t *testing.T) {
			procs := make([]*rankProc, 3)
			addrs := make([]string, 3)
			for r := range procs {
				args := append([]string{"bench", "allreduce-rank", "--rank", fmt.Sprint(r), "--ranks", "3",
					"--bytes", "16MiB", "--iters", "100000", "--warmup", "0", "--timeout", timeout.String()}, variant...)
				procs[r] = startRank(t, args)
				addrs[r] = procs[r].addr
			}
			for _, p := range procs {
				fmt.Fprintf(p.stdin, "members %s\n", strings.Join(addrs, ","))
				p.stdin.Close()
			}
			// Let the ring run a few calls, then kill rank 1 mid-operation
			// (a 16 MiB call is busy almost all the time).
			time.Sleep(1500 * time.Millisecond)
			select {
			case err := <-procs[1].done:
				t.Fatalf("rank 1 ended before the kill: %v\n%s", err, procs[1].stderr.String())
			default:
			}
			killed := time.Now()
			if err := procs[1].cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			<-procs[1].done
			for _, r := range []int{0, 2} {
				select {
				case err := <-procs[r].done:
					var ee *exec.ExitError
					if !errors.As(err, &ee) || ee.ExitCode() != 1 {
						t.Fatalf("rank %d: %v, want exit code 1\n%s", r, err, procs[r].stderr.String())
					}
					msg := procs[r].stderr.String()
					if !strings.Contains(msg, "peer") {
						t.Fatalf("rank %d's error does not name a failed peer: %s", r, msg)
					}
					if strings.Contains(msg, "no progress within the timeout") {
						t.Fatalf("rank %d waited for the timeout: %s", r, msg)
					}
					t.Logf("rank %d failed %v after the kill: %s", r, time.Since(killed).Round(time.Millisecond), strings.TrimSpace(msg))
				case <-time.After(timeout / 2):
					t.Fatalf("rank %d still running %v after rank 1 was killed", r, timeout/2)
				}
			}
		})
	}
}
