package allreduce

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"github.com/dsae/dsae/allreduce/ringpb"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
)

// split cuts b into buffers at seeded positions, as gRPC's receive path
// does with HTTP/2 frames.
func split(b []byte, seed uint64) mem.BufferSlice {
	rng := rand.New(rand.NewPCG(seed, 7))
	var bs mem.BufferSlice
	for len(b) > 0 {
		k := 1 + rng.IntN(len(b))
		if rng.IntN(3) == 0 {
			k = len(b)
		}
		bs = append(bs, mem.SliceBuffer(b[:k]))
		b = b[k:]
	}
	return bs
}

func sinkOf(t testing.TB, bs mem.BufferSlice, fast bool) (*pieceSink, error) {
	s := newPieceSink(MaxPieceBytes)
	if fast {
		return s, s.decode(bs)
	}
	s.reset()
	return s, s.decodeSlow(bs)
}

func sameSink(a, b *pieceSink) bool {
	return a.isPiece == b.isPiece && bytes.Equal(a.job, b.job) && a.generation == b.generation &&
		a.step == b.step && a.phase == b.phase && a.dtype == b.dtype && a.ringStep == b.ringStep &&
		a.chunk == b.chunk && a.offset == b.offset && a.length == b.length && bytes.Equal(a.data, b.data)
}

// FuzzPieceSink checks that the in-place decoder agrees with
// proto.Unmarshal on every split of every encoded piece, and that arbitrary
// bytes never make it panic.
func FuzzPieceSink(f *testing.F) {
	f.Add("job", uint64(1), uint64(2), uint32(3), int32(1), uint32(4), uint32(5), uint64(6), uint64(7), []byte{1, 2, 3, 4}, uint64(1), []byte(nil))
	f.Add("", uint64(0), uint64(0), uint32(0), int32(0), uint32(0), uint32(0), uint64(0), uint64(0), []byte(nil), uint64(2), []byte{0x12, 0x03, 0x7a, 0x01, 0x00})
	f.Add("j", uint64(1<<40), uint64(1<<63), uint32(1<<31), int32(2), uint32(0), uint32(0), uint64(1<<33), uint64(1<<34), bytes.Repeat([]byte{9}, 5000), uint64(3), []byte{0xff, 0xff})
	f.Fuzz(func(t *testing.T, job string, gen, step uint64, phase uint32, dtype int32, rs, chunk uint32, off, length uint64, data []byte, seed uint64, raw []byte) {
		fr := &ringpb.Frame{Kind: &ringpb.Frame_Piece{Piece: &ringpb.Piece{
			Tag:   &ringpb.Tag{Job: job, Generation: gen, Step: step, Phase: phase},
			Dtype: ringpb.DType(dtype), RingStep: rs, Chunk: chunk, Offset: off, Length: length, Data: data,
		}}}
		enc, err := proto.Marshal(fr)
		if err != nil {
			t.Skip("not encodable") // invalid UTF-8 job
		}
		fast, err1 := sinkOf(t, split(enc, seed), true)
		slow, err2 := sinkOf(t, mem.BufferSlice{mem.SliceBuffer(enc)}, false)
		if err1 != nil || err2 != nil {
			t.Fatalf("decode errors: fast %v, slow %v", err1, err2)
		}
		if !sameSink(fast, slow) || string(fast.job) != job || !bytes.Equal(fast.data, data) {
			t.Fatalf("fast and slow decoders disagree")
		}
		// Arbitrary bytes: both decoders either fail or agree.
		fast, err1 = sinkOf(t, split(raw, seed), true)
		slow, err2 = sinkOf(t, mem.BufferSlice{mem.SliceBuffer(raw)}, false)
		if (err1 == nil) != (err2 == nil) || (err1 == nil && !sameSink(fast, slow)) {
			t.Fatalf("on %x: fast (%v) and slow (%v) decoders disagree", raw, err1, err2)
		}
	})
}

func TestWireRoundTripBigEndianPath(t *testing.T) {
	v := []float64{1.5, -2.25, 1e300}
	enc := encodeLE(v, make([]byte, 24))
	got := decodeLE(enc, make([]float64, 3))
	for i := range v {
		if got[i] != v[i] {
			t.Fatalf("float64 %d: %g != %g", i, got[i], v[i])
		}
	}
	w := []float32{1.5, -2.25, 3e38}
	enc = encodeLE(w, make([]byte, 12))
	if !bytes.Equal(enc, wireBytes(w, nil)) && littleEndian {
		t.Fatalf("encodeLE differs from the in-memory layout on a little-endian host")
	}
	got32 := decodeLE(enc, make([]float32, 3))
	for i := range w {
		if got32[i] != w[i] {
			t.Fatalf("float32 %d: %g != %g", i, got32[i], w[i])
		}
	}
}
