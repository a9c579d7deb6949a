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

// recorder is a pieceTarget that keeps what it is given.
type recorder struct {
	hdr    pieceHeader
	data   []byte
	admits int
}

func (r *recorder) admit(h *pieceHeader) bool {
	r.admits++
	r.hdr = *h
	r.hdr.job = append([]byte(nil), h.job...)
	return true
}

func (r *recorder) take(seg []byte) { r.data = append(r.data, seg...) }

// decodeWith decodes bs with the in-place decoder (fast) or via
// proto.Unmarshal (slow).
func decodeWith(bs mem.BufferSlice, fast bool) (*recorder, error) {
	rec := &recorder{}
	s := &pieceSink{target: rec}
	if fast {
		return rec, s.decode(bs)
	}
	var f ringpb.Frame
	if err := proto.Unmarshal(bs.Materialize(), &f); err != nil {
		return rec, err
	}
	s.reset()
	s.fromFrame(&f)
	return rec, nil
}

func sameRecord(a, b *recorder) bool {
	return a.admits == b.admits && a.hdr.String() == b.hdr.String() && bytes.Equal(a.hdr.job, b.hdr.job) &&
		a.hdr.generation == b.hdr.generation && a.hdr.step == b.hdr.step && a.hdr.phase == b.hdr.phase &&
		bytes.Equal(a.data, b.data)
}

// FuzzPieceSink checks the hand-written encoder and decoder against
// proto: what pieceOut writes, proto.Unmarshal reads back; what proto.Marshal
// writes, the in-place decoder reads as proto does, whatever the split into
// receive buffers; and arbitrary bytes never make it panic.
func FuzzPieceSink(f *testing.F) {
	f.Add("job", uint64(1), uint64(2), uint32(3), uint32(4), uint32(5), uint64(6), uint64(7), []byte{1, 2, 3, 4}, uint64(1), []byte(nil))
	f.Add("", uint64(0), uint64(0), uint32(0), uint32(0), uint32(0), uint64(0), uint64(0), []byte(nil), uint64(2), []byte{0x12, 0x03, 0x7a, 0x01, 0x00})
	f.Add("j", uint64(1<<40), uint64(1<<63), uint32(1<<31), uint32(0), uint32(0), uint64(1<<33), uint64(1<<34), bytes.Repeat([]byte{9}, 5000), uint64(3), []byte{0xff, 0xff})
	f.Add("k", uint64(2), uint64(3), uint32(4), uint32(1), uint32(2), uint64(0), uint64(1<<20), bytes.Repeat([]byte{1, 2, 3, 4}, 3000), uint64(4), []byte{})
	f.Fuzz(func(t *testing.T, job string, gen, step uint64, phase uint32, rs, chunk uint32, off, length uint64, data []byte, seed uint64, raw []byte) {
		data = data[:len(data)/4*4]
		vals := make([]float32, len(data)/4)
		copyLE(vals, data)
		out := &pieceOut{pieceHeader: pieceHeader{
			job: []byte(job), generation: gen, step: step, phase: phase, dtype: ringpb.DType_DTYPE_FLOAT32,
			ringStep: uint64(rs), chunk: uint64(chunk), offset: off, length: length,
		}, f32: vals}
		if seed%2 == 1 {
			out.track = newSendTracker() // large pieces reference vals
		}
		bs := out.marshal()
		enc := bs.Materialize()
		bs.Free()
		if out.track != nil && out.track.outstanding.Load() != 0 {
			t.Fatalf("%d buffers still tracked after Free", out.track.outstanding.Load())
		}
		var fr ringpb.Frame
		if err := (proto.UnmarshalOptions{}).Unmarshal(enc, &fr); err != nil {
			if _, err2 := decodeWith(split(enc, seed), true); err2 == nil {
				return // invalid UTF-8 in job: proto refuses, the fast path need not
			}
			return
		}
		p := fr.GetPiece()
		if p.GetTag().GetJob() != job || p.GetTag().GetGeneration() != gen || p.GetTag().GetStep() != step ||
			p.GetTag().GetPhase() != phase || p.GetRingStep() != rs || p.GetChunk() != chunk ||
			p.GetOffset() != off || p.GetLength() != length || !bytes.Equal(p.GetData(), data) {
			t.Fatalf("proto reads back %v", &fr)
		}
		std, err := proto.Marshal(&fr)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range [][]byte{enc, std} {
			fast, err1 := decodeWith(split(e, seed), true)
			slow, err2 := decodeWith(mem.BufferSlice{mem.SliceBuffer(e)}, false)
			if err1 != nil || err2 != nil || !sameRecord(fast, slow) || !bytes.Equal(fast.data, data) {
				t.Fatalf("decoders disagree: fast %v %+v, slow %v %+v", err1, fast, err2, slow)
			}
		}
		fast, err1 := decodeWith(split(raw, seed), true)
		slow, err2 := decodeWith(mem.BufferSlice{mem.SliceBuffer(raw)}, false)
		if (err1 == nil) != (err2 == nil) || (err1 == nil && !sameRecord(fast, slow)) {
			t.Fatalf("on %x: fast (%v) and slow (%v) decoders disagree", raw, err1, err2)
		}
	})
}

func TestLittleEndianKernels(t *testing.T) {
	v := []float64{1.5, -2.25, 1e300}
	b := appendLE(nil, v)
	got := make([]float64, 3)
	copyLE(got, b)
	addLE(got, b)
	for i := range v {
		if got[i] != 2*v[i] {
			t.Fatalf("float64 %d: %g != %g", i, got[i], 2*v[i])
		}
	}
	w := []float32{1.5, -2.25, 3e37, 7, 8, 9}
	b = appendLE([]byte{0}, w)[1:] // misaligned source
	got32 := make([]float32, len(w))
	copyLE(got32, b)
	addLE(got32, b)
	for i := range w {
		if got32[i] != 2*w[i] {
			t.Fatalf("float32 %d: %g != %g", i, got32[i], 2*w[i])
		}
	}
}
