package allreduce_test

import (
	"context"
	"fmt"
	"sync"

	"github.com/dsae/dsae/allreduce"
)

// Three workers, each with its own gRPC server, sum their buffers.
func Example() {
	tr := allreduce.NewMemTransport() // allreduce.TCP() between processes
	var servers []*allreduce.Server
	var members []string
	for range 3 {
		s, err := allreduce.StartServer(tr, "", allreduce.NewService())
		if err != nil {
			panic(err)
		}
		defer s.Stop()
		servers = append(servers, s)
		members = append(members, s.Addr())
	}
	bufs := [][]float32{{1, 2, 3, 4}, {10, 20, 30, 40}, {100, 200, 300, 400}}
	var wg sync.WaitGroup
	for rank, s := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cfg := allreduce.DefaultConfig()
			cfg.Job, cfg.Generation, cfg.Members, cfg.Rank = "demo", 1, members, rank
			cfg.Transport = tr
			ring, err := allreduce.NewRing(s.Service(), cfg)
			if err != nil {
				panic(err)
			}
			defer ring.Close()
			if err := ring.AllReduceFloat32(context.Background(), ring.Tag(1, 0), bufs[rank]); err != nil {
				panic(err)
			}
		}()
	}
	wg.Wait()
	fmt.Println(bufs[0], bufs[1], bufs[2])
	// Output: [111 222 333 444] [111 222 333 444] [111 222 333 444]
}
