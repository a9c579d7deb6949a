package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/dsae/dsae/allreduce"
)

// benchAllReduceFlags are shared by the parent command and its rank
// processes.
type benchAllReduceFlags struct {
	ranks      int
	sizes      string
	iters      int
	warmup     int
	pieceBytes string
	lanes      int
	dataPath   string
	unix       bool
	timeout    time.Duration
	json       bool
}

func (f *benchAllReduceFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.IntVar(&f.ranks, "ranks", 2, "number of rank processes, 1..64")
	fl.StringVar(&f.sizes, "bytes", "64KiB,1MiB,16MiB,64MiB", "buffer sizes, comma separated (suffixes KiB, MiB, GiB; multiples of 4)")
	fl.IntVar(&f.iters, "iters", 20, "timed calls per size (the median is reported)")
	fl.IntVar(&f.warmup, "warmup", 3, "untimed calls per size before the timed ones")
	fl.StringVar(&f.pieceBytes, "piece-bytes", "0", "largest message payload of the ring (bytes; KiB/MiB suffixes allowed; 0 = the data path's default)")
	fl.IntVar(&f.lanes, "lanes", allreduce.DefaultConfig().Lanes, "streams (connections) between neighbours")
	fl.StringVar(&f.dataPath, "data-path", allreduce.DefaultConfig().DataPath.String(), "how pieces travel: bulk (byte streams beside gRPC) or grpc (gRPC messages)")
	fl.BoolVar(&f.unix, "unix", true, "let ranks on one host open their bulk streams over Unix sockets (false: TCP on loopback)")
	fl.DurationVar(&f.timeout, "timeout", 60*time.Second, "ring progress timeout")
}

// parsed returns the sizes and piece size, checking every flag.
func (f *benchAllReduceFlags) parsed() (sizes []int64, piece int64, err error) {
	if f.ranks < 1 || f.ranks > 64 {
		return nil, 0, fmt.Errorf("--ranks %d out of range [1, 64]", f.ranks)
	}
	if f.iters < 1 || f.iters > 100000 {
		return nil, 0, fmt.Errorf("--iters %d out of range [1, 100000]", f.iters)
	}
	if f.warmup < 0 || f.warmup > 100000 {
		return nil, 0, fmt.Errorf("--warmup %d out of range [0, 100000]", f.warmup)
	}
	if f.timeout <= 0 {
		return nil, 0, fmt.Errorf("--timeout %v must be positive", f.timeout)
	}
	for s := range strings.SplitSeq(f.sizes, ",") {
		n, err := parseByteSize(strings.TrimSpace(s))
		if err != nil {
			return nil, 0, fmt.Errorf("--bytes: %w", err)
		}
		if n%4 != 0 || n > 4<<30 {
			return nil, 0, fmt.Errorf("--bytes: %q must be a multiple of 4 bytes (float32) and at most 4GiB", s)
		}
		sizes = append(sizes, n)
	}
	piece, err = parseByteSize(f.pieceBytes)
	if err != nil {
		return nil, 0, fmt.Errorf("--piece-bytes: %w", err)
	}
	if piece != 0 && (piece < allreduce.MinPieceBytes || piece > allreduce.MaxPieceBytes) {
		return nil, 0, fmt.Errorf("--piece-bytes %d out of range [%d, %d] (or 0 for the default)", piece, allreduce.MinPieceBytes, allreduce.MaxPieceBytes)
	}
	if _, err := allreduce.ParseDataPath(f.dataPath); err != nil {
		return nil, 0, fmt.Errorf("--data-path %q: want bulk or grpc", f.dataPath)
	}
	if f.lanes < 1 || f.lanes > allreduce.MaxLanes {
		return nil, 0, fmt.Errorf("--lanes %d out of range [1, %d]", f.lanes, allreduce.MaxLanes)
	}
	return sizes, piece, nil
}

// parseByteSize reads "1048576", "64KiB", "16MiB" or "1GiB".
func parseByteSize(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}}
	num, mult := s, int64(1)
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			num, mult = strings.TrimSuffix(s, u.suffix), u.mult
			break
		}
	}
	v, err := strconv.ParseInt(num, 10, 64)
	if err != nil || v < 0 || v > (1<<40)/mult {
		return 0, fmt.Errorf("size %q: want a non-negative integer with an optional suffix B, KiB, MiB or GiB", s)
	}
	return v * mult, nil
}

func formatByteSize(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%dGiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}

// benchResult is one line of the report; the JSON field names are read by
// bench/allreduce_compare.sh.
type benchResult struct {
	Impl      string  `json:"impl"`
	DataPath  string  `json:"data_path"`
	Unix      bool    `json:"unix"`
	Ranks     int     `json:"ranks"`
	Bytes     int64   `json:"bytes"`
	Iters     int     `json:"iters"`
	MedianUS  float64 `json:"median_us"`
	AlgBWGBps float64 `json:"algbw_gbps"`
	BusBWGBps float64 `json:"busbw_gbps"`
}

// rankReport is what a rank process prints as its last stdout line.
type rankReport struct {
	Rank  int       `json:"rank"`
	Times [][]int64 `json:"times_ns"` // per size, per timed call
}

func newBenchAllReduceCmd() *cobra.Command {
	var f benchAllReduceFlags
	cmd := &cobra.Command{
		Use:   "allreduce",
		Short: "Time the ring all-reduce between rank processes on loopback",
		Long: `Start --ranks processes of this binary on 127.0.0.1, connect them in a ring
and time float32 all-reduces of each --bytes size.

Before each timed call the ranks pass a 1-element all-reduce as a barrier.
A call's time is the slowest rank's; the median over --iters calls is
reported with the nccl-tests bandwidths (GB = 1e9 bytes):
  algbw = bytes / time        busbw = algbw * 2(N-1)/N
After the timed calls of each size, one more call checks the sums on every
rank.

Each ring link is opened over gRPC. With --data-path bulk (the default) the
data travel on byte streams beside it: Unix sockets between these ranks,
which share a host, or TCP on loopback with --unix=false. With --data-path
grpc they travel as gRPC messages.`,
		Example: `  dsae bench allreduce --ranks 4 --bytes 64KiB,16MiB --iters 20
  dsae bench allreduce --ranks 2 --bytes 64MiB --unix=false --json
  dsae bench allreduce --ranks 4 --bytes 16MiB --data-path grpc`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			sizes, _, err := f.parsed()
			if err != nil {
				return invalid(err)
			}
			res, err := runAllReduceBench(cmd.Context(), &f, sizes)
			if err != nil {
				return err
			}
			return printBenchResults(cmd.OutOrStdout(), res, f.json)
		},
	}
	f.register(cmd)
	cmd.Flags().BoolVar(&f.json, "json", false, "print the results as JSON")
	return cmd
}

func runAllReduceBench(ctx context.Context, f *benchAllReduceFlags, sizes []int64) ([]benchResult, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("locating the dsae binary: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type proc struct {
		cmd   *exec.Cmd
		stdin io.WriteCloser
		out   *bufio.Reader
	}
	procs := make([]proc, f.ranks)
	defer func() {
		cancel()
		for _, p := range procs {
			if p.cmd != nil && p.cmd.Process != nil {
				p.cmd.Wait()
			}
		}
	}()
	for r := range procs {
		c := exec.CommandContext(ctx, exe, "bench", "allreduce-rank",
			"--rank", strconv.Itoa(r), "--ranks", strconv.Itoa(f.ranks), "--bytes", f.sizes,
			"--iters", strconv.Itoa(f.iters), "--warmup", strconv.Itoa(f.warmup),
			"--piece-bytes", f.pieceBytes, "--lanes", strconv.Itoa(f.lanes), "--timeout", f.timeout.String(),
			"--data-path", f.dataPath, "--unix="+strconv.FormatBool(f.unix))
		c.Stderr = os.Stderr
		stdin, err := c.StdinPipe()
		if err != nil {
			return nil, err
		}
		stdout, err := c.StdoutPipe()
		if err != nil {
			return nil, err
		}
		if err := c.Start(); err != nil {
			return nil, fmt.Errorf("starting rank %d: %w", r, err)
		}
		procs[r] = proc{cmd: c, stdin: stdin, out: bufio.NewReader(stdout)}
	}
	addrs := make([]string, f.ranks)
	for r, p := range procs {
		line, err := p.out.ReadString('\n')
		addr, ok := strings.CutPrefix(strings.TrimSpace(line), "addr ")
		if err != nil || !ok {
			return nil, fmt.Errorf("rank %d did not report its address (got %q): %v", r, line, err)
		}
		addrs[r] = addr
	}
	for r, p := range procs {
		if _, err := fmt.Fprintf(p.stdin, "members %s\n", strings.Join(addrs, ",")); err != nil {
			return nil, fmt.Errorf("sending members to rank %d: %w", r, err)
		}
		p.stdin.Close()
	}
	reports := make([]rankReport, f.ranks)
	errs := make([]error, f.ranks)
	var wg sync.WaitGroup
	for r, p := range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			line, err := p.out.ReadString('\n')
			if err == nil {
				err = json.Unmarshal([]byte(line), &reports[r])
			}
			if werr := p.cmd.Wait(); werr != nil {
				err = werr
			}
			procs[r].cmd = nil
			if err != nil {
				errs[r] = fmt.Errorf("rank %d: %w", r, err)
				cancel() // one failed rank ends the run
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	res := summarise(reports, sizes, f.iters)
	for i := range res {
		res[i].DataPath = f.dataPath
		res[i].Unix = f.unix && f.dataPath == allreduce.DataBulk.String()
	}
	return res, nil
}

// summarise takes, per timed call, the slowest rank's time and reports the
// median call of each size.
func summarise(reports []rankReport, sizes []int64, iters int) []benchResult {
	n := len(reports)
	out := make([]benchResult, 0, len(sizes))
	for i, size := range sizes {
		calls := make([]int64, iters)
		for _, rep := range reports {
			for k, t := range rep.Times[i] {
				calls[k] = max(calls[k], t)
			}
		}
		slices.Sort(calls)
		med := float64(calls[iters/2])
		if iters%2 == 0 {
			med = float64(calls[iters/2-1]+calls[iters/2]) / 2
		}
		algbw := float64(size) / med // bytes per ns = GB/s
		out = append(out, benchResult{
			Impl: "dsae", Ranks: n, Bytes: size, Iters: iters, MedianUS: med / 1e3,
			AlgBWGBps: algbw, BusBWGBps: algbw * 2 * float64(n-1) / float64(n),
		})
	}
	return out
}

func printBenchResults(w io.Writer, res []benchResult, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "ranks\tbytes\ttime/call (µs)\talgbw (GB/s)\tbusbw (GB/s)\t")
	for _, r := range res {
		fmt.Fprintf(tw, "%d\t%s\t%.1f\t%.3f\t%.3f\t\n", r.Ranks, formatByteSize(r.Bytes), r.MedianUS, r.AlgBWGBps, r.BusBWGBps)
	}
	return tw.Flush()
}

// newBenchAllReduceRankCmd is the hidden command each rank process runs:
// it prints "addr HOST:PORT", reads "members A,B,..." from stdin, runs the
// calls and prints its rankReport as one JSON line.
func newBenchAllReduceRankCmd() *cobra.Command {
	var f benchAllReduceFlags
	var rank int
	cmd := &cobra.Command{
		Use:    "allreduce-rank",
		Short:  "One rank of 'dsae bench allreduce' (started by it)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			sizes, piece, err := f.parsed()
			if err != nil {
				return invalid(err)
			}
			return runAllReduceRank(cmd.Context(), cmd.InOrStdin(), cmd.OutOrStdout(), &f, rank, sizes, piece)
		},
	}
	f.register(cmd)
	cmd.Flags().IntVar(&rank, "rank", 0, "this process's rank")
	return cmd
}

func runAllReduceRank(ctx context.Context, in io.Reader, out io.Writer, f *benchAllReduceFlags, rank int, sizes []int64, piece int64) error {
	var opts []allreduce.ServiceOption
	if !f.unix {
		opts = append(opts, allreduce.WithUnixSockets(""))
	}
	svc := allreduce.NewService(opts...)
	srv, err := allreduce.StartServer(allreduce.TCP(), "127.0.0.1:0", svc)
	if err != nil {
		return err
	}
	defer srv.Stop()
	if _, err := fmt.Fprintf(out, "addr %s\n", srv.Addr()); err != nil {
		return err
	}
	line, err := bufio.NewReader(in).ReadString('\n')
	members, ok := strings.CutPrefix(strings.TrimSpace(line), "members ")
	if err != nil || !ok {
		return fmt.Errorf("rank %d: expected a members line on stdin, got %q", rank, line)
	}
	cfg := allreduce.DefaultConfig()
	cfg.Job, cfg.Generation = "bench", 1
	cfg.Members, cfg.Rank = strings.Split(members, ","), rank
	cfg.PieceBytes, cfg.Timeout, cfg.Lanes = int(piece), f.timeout, f.lanes
	if cfg.DataPath, err = allreduce.ParseDataPath(f.dataPath); err != nil {
		return err
	}
	ring, err := allreduce.NewRing(svc, cfg)
	if err != nil {
		return err
	}
	defer ring.Close()

	step := uint64(0)
	call := func(buf []float32) error {
		step++
		return ring.AllReduceFloat32(ctx, ring.Tag(step, 0), buf)
	}
	barrier := make([]float32, 1)
	rep := rankReport{Rank: rank}
	for _, size := range sizes {
		buf := make([]float32, size/4)
		for i := range buf {
			buf[i] = float32(rank+1) * 1e-3
		}
		times := make([]int64, 0, f.iters)
		for k := range f.warmup + f.iters {
			if err := call(barrier); err != nil {
				return err
			}
			start := time.Now()
			if err := call(buf); err != nil {
				return err
			}
			if k >= f.warmup {
				times = append(times, time.Since(start).Nanoseconds())
			}
		}
		rep.Times = append(rep.Times, times)
		// One more call checks the sums: rank r contributes r+1 everywhere,
		// so every element must come back as exactly N(N+1)/2.
		for i := range buf {
			buf[i] = float32(rank + 1)
		}
		if err := call(buf); err != nil {
			return err
		}
		want := float32(len(cfg.Members) * (len(cfg.Members) + 1) / 2)
		for i, v := range buf {
			if v != want {
				return fmt.Errorf("rank %d: element %d of the %s check is %g, want %g", rank, i, formatByteSize(size), v, want)
			}
		}
	}
	b, err := json.Marshal(rep)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(out, "%s\n", b)
	return err
}
