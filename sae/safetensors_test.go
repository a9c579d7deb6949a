package sae

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"testing"
)

func TestSafetensorsRoundTrip(t *testing.T) {
	in := []Tensor{
		{Name: "W_enc", Shape: []int{3, 2}, Data: []float32{1, -2, 3.5, float32(math.Inf(1)), 0, 6}},
		{Name: "b", Shape: []int{2}, Data: []float32{-0.25, 1e-30}},
		{Name: "empty", Shape: []int{0, 4}, Data: nil},
	}
	var buf bytes.Buffer
	if err := WriteSafetensors(&buf, in, map[string]string{"k": "v"}); err != nil {
		t.Fatal(err)
	}
	raw := buf.Bytes()
	hlen := binary.LittleEndian.Uint64(raw)
	if (8+hlen)%8 != 0 {
		t.Errorf("data section starts at byte %d, not 8-byte aligned", 8+hlen)
	}
	if want := 8 + int(hlen) + 4*8; len(raw) != want {
		t.Errorf("file is %d bytes, want %d", len(raw), want)
	}
	out, meta, err := ReadSafetensors(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if meta["k"] != "v" {
		t.Errorf("metadata = %v", meta)
	}
	for _, want := range in {
		got, ok := out[want.Name]
		if !ok {
			t.Fatalf("tensor %q missing", want.Name)
		}
		if len(got.Shape) != len(want.Shape) || len(got.Data) != len(want.Data) {
			t.Fatalf("tensor %q: shape %v len %d, want %v len %d", want.Name, got.Shape, len(got.Data), want.Shape, len(want.Data))
		}
		for i := range want.Data {
			if math.Float32bits(got.Data[i]) != math.Float32bits(want.Data[i]) {
				t.Errorf("tensor %q[%d] = %v, want %v", want.Name, i, got.Data[i], want.Data[i])
			}
		}
	}
}

// A file written by the reference Python implementation for
// {"a": float32 [[1, 2]]} (header padded to 8 bytes with spaces).
func TestSafetensorsReadsReferenceLayout(t *testing.T) {
	hdr := `{"a":{"dtype":"F32","shape":[1,2],"data_offsets":[0,8]}}`
	for len(hdr)%8 != 0 {
		hdr += " "
	}
	var b []byte
	b = binary.LittleEndian.AppendUint64(b, uint64(len(hdr)))
	b = append(b, hdr...)
	b = binary.LittleEndian.AppendUint32(b, math.Float32bits(1))
	b = binary.LittleEndian.AppendUint32(b, math.Float32bits(2))
	out, _, err := ReadSafetensors(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if a := out["a"]; len(a.Data) != 2 || a.Data[0] != 1 || a.Data[1] != 2 {
		t.Fatalf("a = %+v", a)
	}
}

func TestSafetensorsRejectsMalformed(t *testing.T) {
	mk := func(hdr string, data int) []byte {
		var b []byte
		b = binary.LittleEndian.AppendUint64(b, uint64(len(hdr)))
		b = append(b, hdr...)
		return append(b, make([]byte, data)...)
	}
	cases := map[string][]byte{
		"short":        {1, 2, 3},
		"huge header":  binary.LittleEndian.AppendUint64(nil, 1<<40),
		"not json":     mk("{nope", 0),
		"f16":          mk(`{"a":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}}`, 4),
		"shape/offset": mk(`{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}`, 8),
		"gap":          mk(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, 8),
		"overlap":      mk(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, 8),
		"truncated":    mk(`{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}`, 8),
		"negative":     mk(`{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,0]}}`, 0),
		"bad metadata": mk(`{"__metadata__":{"a":1}}`, 0),
	}
	for name, b := range cases {
		if _, _, err := ReadSafetensors(bytes.NewReader(b)); !errors.Is(err, ErrSafetensors) {
			t.Errorf("%s: err = %v, want ErrSafetensors", name, err)
		}
	}
}

func TestWriteSafetensorsRejectsBadTensors(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteSafetensors(&buf, []Tensor{{Name: "a", Shape: []int{2, 2}, Data: []float32{1}}}, nil); !errors.Is(err, ErrSafetensors) {
		t.Errorf("shape/data mismatch: err = %v", err)
	}
	two := []Tensor{{Name: "a", Shape: []int{1}, Data: []float32{1}}, {Name: "a", Shape: []int{1}, Data: []float32{1}}}
	if err := WriteSafetensors(&buf, two, nil); !errors.Is(err, ErrSafetensors) {
		t.Errorf("repeated name: err = %v", err)
	}
}

func FuzzReadSafetensors(f *testing.F) {
	var buf bytes.Buffer
	_ = WriteSafetensors(&buf, []Tensor{{Name: "x", Shape: []int{2, 1}, Data: []float32{1, 2}}}, map[string]string{"a": "b"})
	f.Add(buf.Bytes())
	f.Add([]byte{})
	f.Add(binary.LittleEndian.AppendUint64(nil, 2))
	f.Fuzz(func(t *testing.T, b []byte) {
		ts, _, err := ReadSafetensors(bytes.NewReader(b))
		if err != nil {
			if !errors.Is(err, ErrSafetensors) {
				t.Fatalf("error does not wrap ErrSafetensors: %v", err)
			}
			return
		}
		// Whatever was accepted must write back and read back the same.
		var list []Tensor
		for _, x := range ts {
			list = append(list, x)
		}
		var out bytes.Buffer
		if err := WriteSafetensors(&out, list, nil); err != nil {
			t.Fatalf("accepted tensors do not write back: %v", err)
		}
		again, _, err := ReadSafetensors(&out)
		if err != nil || len(again) != len(ts) {
			t.Fatalf("rewrite does not read back: %v", err)
		}
	})
}
