package sae

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math"
	"strings"
	"testing"
)

// TestMarshalResumeBitwise checks that stopping after k steps, encoding the
// state, restoring it into a fresh optimizer and continuing gives the same
// parameters, bit for bit, as an uninterrupted run.
func TestMarshalResumeBitwise(t *testing.T) {
	const n, steps, cut = optimChunk + 77, 8, 3
	grads := make([][]float32, steps)
	for s := range grads {
		grads[s] = randVec(uint64(100+s), n, 2)
	}
	grad := func(s int) []float32 { return append([]float32(nil), grads[s]...) }
	for name, c := range allConfigs() {
		ref := mustOptimizer(t, c, n)
		pRef := randVec(9, n, 1)
		for s := range steps {
			ref.Update(pRef, grad(s))
		}

		first := mustOptimizer(t, c, n)
		p := randVec(9, n, 1)
		for s := range cut {
			first.Update(p, grad(s))
		}
		state, err := first.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		second := mustOptimizer(t, c, n)
		if err := second.UnmarshalBinary(state); err != nil {
			t.Fatalf("%s: restore: %v", name, err)
		}
		if second.Step() != cut {
			t.Errorf("%s: restored Step() = %d, want %d", name, second.Step(), cut)
		}
		for s := cut; s < steps; s++ {
			lrA := ref.cfg.LRAt(int64(s))
			lrB, _ := second.Update(p, grad(s))
			if lrA != lrB {
				t.Errorf("%s: step %d lr %g after restore, want %g", name, s, lrB, lrA)
			}
		}
		for i := range p {
			if math.Float32bits(p[i]) != math.Float32bits(pRef[i]) {
				t.Fatalf("%s: p[%d] = %v after resume, %v uninterrupted", name, i, p[i], pRef[i])
			}
		}
		a, _ := ref.MarshalBinary()
		b, _ := second.MarshalBinary()
		if !bytes.Equal(a, b) {
			t.Errorf("%s: final states differ between resumed and uninterrupted runs", name)
		}
	}
}

func TestStateLayout(t *testing.T) {
	o := mustOptimizer(t, DefaultOptimizerConfig(), 3)
	o.Update([]float32{1, 2, 3}, []float32{0.5, -1, 2})
	b, err := o.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if want := 24 + 2*3*4 + 4; len(b) != want {
		t.Fatalf("adam state for 3 params is %d bytes, want %d", len(b), want)
	}
	if string(b[:4]) != "DSOS" || binary.LittleEndian.Uint16(b[4:]) != 1 || b[6] != 2 || b[7] != 2 ||
		binary.LittleEndian.Uint64(b[8:]) != 1 || binary.LittleEndian.Uint64(b[16:]) != 3 {
		t.Errorf("header % x does not match the documented layout", b[:24])
	}
	// First moment after one step is (1−β1)·g.
	if m0 := math.Float32frombits(binary.LittleEndian.Uint32(b[24:])); math.Abs(float64(m0)-0.05) > 1e-8 {
		t.Errorf("m[0] = %v, want 0.05", m0)
	}
	if crc := crc32.Checksum(b[:len(b)-4], crc32.MakeTable(crc32.Castagnoli)); crc != binary.LittleEndian.Uint32(b[len(b)-4:]) {
		t.Errorf("trailer is not the CRC-32C of the body")
	}
	plain := mustOptimizer(t, sgdConfig(0.1, 0), 1000)
	if b, _ := plain.MarshalBinary(); len(b) != 28 {
		t.Errorf("plain SGD state is %d bytes, want 28 (no buffers)", len(b))
	}
}

// withCRC rewrites the trailing checksum so a test reaches the checks after it.
func withCRC(b []byte) []byte {
	b = append([]byte(nil), b...)
	binary.LittleEndian.PutUint32(b[len(b)-4:], crc32.Checksum(b[:len(b)-4], crc32.MakeTable(crc32.Castagnoli)))
	return b
}

func TestUnmarshalRejects(t *testing.T) {
	const n = 5
	adam := mustOptimizer(t, DefaultOptimizerConfig(), n)
	adam.Update(randVec(1, n, 1), randVec(2, n, 1))
	good, err := adam.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	mutate := func(f func(b []byte)) []byte {
		b := append([]byte(nil), good...)
		f(b)
		return b
	}
	momState, _ := mustOptimizer(t, sgdConfig(0.1, 0.9), n).MarshalBinary()
	plainState, _ := mustOptimizer(t, sgdConfig(0.1, 0), n).MarshalBinary()
	otherSize, _ := mustOptimizer(t, DefaultOptimizerConfig(), n+1).MarshalBinary()

	for _, tc := range []struct {
		name   string
		target OptimizerConfig
		data   []byte
		want   string
	}{
		{"empty", DefaultOptimizerConfig(), nil, "truncated"},
		{"header only", DefaultOptimizerConfig(), good[:24], "truncated"},
		{"cut in buffers", DefaultOptimizerConfig(), good[:len(good)-9], "truncated"},
		{"missing checksum byte", DefaultOptimizerConfig(), good[:len(good)-1], "truncated"},
		{"extra byte", DefaultOptimizerConfig(), append(append([]byte(nil), good...), 0), "bytes"},
		{"bad magic", DefaultOptimizerConfig(), mutate(func(b []byte) { b[0] = 'X' }), "magic"},
		{"future version", DefaultOptimizerConfig(), mutate(func(b []byte) { b[4] = 9 }), "version 9"},
		{"flipped moment bit", DefaultOptimizerConfig(), mutate(func(b []byte) { b[30] ^= 0x10 }), "checksum"},
		{"flipped step bit", DefaultOptimizerConfig(), mutate(func(b []byte) { b[8] ^= 1 }), "checksum"},
		{"flipped checksum", DefaultOptimizerConfig(), mutate(func(b []byte) { b[len(b)-1] ^= 0xff }), "checksum"},
		{"huge n", DefaultOptimizerConfig(), mutate(func(b []byte) { binary.LittleEndian.PutUint64(b[16:], 1<<62) }), "corrupt"},
		{"negative step", DefaultOptimizerConfig(), withCRC(mutate(func(b []byte) { binary.LittleEndian.PutUint64(b[8:], math.MaxUint64) })), "step"},
		{"sgd state into adam", DefaultOptimizerConfig(), momState, "optimizer sgd"},
		{"adam state into sgd", sgdConfig(0.1, 0.9), good, "optimizer adam"},
		{"other size", DefaultOptimizerConfig(), otherSize, "6 parameters"},
		{"momentum state into plain sgd", sgdConfig(0.1, 0), momState, "moment buffers"},
		{"plain state into momentum sgd", sgdConfig(0.1, 0.9), plainState, "moment buffers"},
	} {
		o := mustOptimizer(t, tc.target, n)
		o.Update(randVec(3, n, 1), randVec(4, n, 1))
		before, _ := o.MarshalBinary()
		err := o.UnmarshalBinary(tc.data)
		if !errors.Is(err, ErrOptimizerState) {
			t.Errorf("%s: error %v, want one wrapping ErrOptimizerState", tc.name, err)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %q should mention %q", tc.name, err, tc.want)
		}
		if after, _ := o.MarshalBinary(); !bytes.Equal(before, after) {
			t.Errorf("%s: rejected state modified the optimizer", tc.name)
		}
	}
	// Every strict prefix is rejected.
	for k := range len(good) {
		if err := mustOptimizer(t, DefaultOptimizerConfig(), n).UnmarshalBinary(good[:k]); !errors.Is(err, ErrOptimizerState) {
			t.Fatalf("prefix of %d/%d bytes: error %v, want ErrOptimizerState", k, len(good), err)
		}
	}
}

// FuzzOptimizerUnmarshal checks that arbitrary bytes never panic and that
// anything accepted round-trips.
func FuzzOptimizerUnmarshal(f *testing.F) {
	o := mustOptimizer(f, DefaultOptimizerConfig(), 3)
	o.Update([]float32{1, 2, 3}, []float32{1, 1, 1})
	good, _ := o.MarshalBinary()
	f.Add(good)
	f.Add(good[:10])
	f.Add([]byte("DSOS"))
	f.Fuzz(func(t *testing.T, data []byte) {
		o := mustOptimizer(t, DefaultOptimizerConfig(), 3)
		if err := o.UnmarshalBinary(data); err != nil {
			return
		}
		back, err := o.MarshalBinary()
		if err != nil || !bytes.Equal(back, data) {
			t.Fatalf("accepted state does not round-trip")
		}
	})
}
