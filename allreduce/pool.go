package allreduce

import (
	"math/bits"
	"sync"

	"google.golang.org/grpc/mem"
)

// dirtyPool is a mem.BufferPool of power-of-two size classes that, unlike
// gRPC's default pool, does not zero a buffer when handing it out: every
// user of these buffers (gRPC's frame reader, the ring's marshaller) fills
// the requested length before reading it. Zeroing was a sixth of the CPU
// time of a large all-reduce.
type dirtyPool struct {
	classes [maxPoolClass + 1]sync.Pool
}

const (
	minPoolClass = 8  // 256 B
	maxPoolClass = 23 // 8 MiB
)

var _ mem.BufferPool = (*dirtyPool)(nil)

// ringPool serves gRPC's buffers on ring connections and ring messages.
var ringPool = &dirtyPool{}

func poolClass(n int) int {
	if n <= 1<<minPoolClass {
		return minPoolClass
	}
	return bits.Len(uint(n - 1))
}

// Get returns a buffer of length n with unspecified contents.
func (p *dirtyPool) Get(n int) *[]byte {
	c := poolClass(n)
	if c > maxPoolClass {
		b := make([]byte, n)
		return &b
	}
	if v, ok := p.classes[c].Get().(*[]byte); ok {
		*v = (*v)[:n]
		return v
	}
	b := make([]byte, n, 1<<c)
	return &b
}

// Put returns a buffer obtained from Get.
func (p *dirtyPool) Put(b *[]byte) {
	c := bits.Len(uint(cap(*b))) - 1
	if c < minPoolClass || c > maxPoolClass || cap(*b) != 1<<c {
		return
	}
	p.classes[c].Put(b)
}
