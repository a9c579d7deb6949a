package sae

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
)

// ErrSafetensors is wrapped by every error about a malformed safetensors file.
var ErrSafetensors = errors.New("safetensors")

// maxHeader bounds the JSON header we accept; real headers for a few
// tensors are a few hundred bytes.
const maxHeader = 1 << 24

// Tensor is a named float32 tensor in row-major order.
type Tensor struct {
	Name  string
	Shape []int
	Data  []float32
}

type stEntry struct {
	DType       string   `json:"dtype"`
	Shape       []int    `json:"shape"`
	DataOffsets [2]int64 `json:"data_offsets"`
}

// WriteSafetensors writes tensors in the safetensors format (an 8-byte
// little-endian header length, a JSON header, then the raw little-endian
// data), which Python's safetensors and SAELens load directly. Tensors are
// stored in the order given; metadata may be nil.
func WriteSafetensors(w io.Writer, tensors []Tensor, metadata map[string]string) error {
	header := make(map[string]any, len(tensors)+1)
	if len(metadata) > 0 {
		header["__metadata__"] = metadata
	}
	var off int64
	for _, t := range tensors {
		if n := numel(t.Shape); n != len(t.Data) {
			return fmt.Errorf("%w: tensor %q has shape %v (%d elements) but %d values", ErrSafetensors, t.Name, t.Shape, n, len(t.Data))
		}
		if _, dup := header[t.Name]; dup || t.Name == "" {
			return fmt.Errorf("%w: tensor name %q is empty or repeated", ErrSafetensors, t.Name)
		}
		end := off + 4*int64(len(t.Data))
		header[t.Name] = stEntry{DType: "F32", Shape: t.Shape, DataOffsets: [2]int64{off, end}}
		off = end
	}
	js, err := json.Marshal(header)
	if err != nil {
		return err
	}
	for len(js)%8 != 0 { // align the data section to 8 bytes, as the reference writer does
		js = append(js, ' ')
	}
	var lenBuf [8]byte
	binary.LittleEndian.PutUint64(lenBuf[:], uint64(len(js)))
	if _, err := w.Write(lenBuf[:]); err != nil {
		return err
	}
	if _, err := w.Write(js); err != nil {
		return err
	}
	buf := make([]byte, 0, 1<<16)
	for _, t := range tensors {
		for _, v := range t.Data {
			buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
			if len(buf) == cap(buf) {
				if _, err := w.Write(buf); err != nil {
					return err
				}
				buf = buf[:0]
			}
		}
	}
	_, err = w.Write(buf)
	return err
}

// ReadSafetensors reads a safetensors file holding F32 tensors. It checks
// that every tensor's offsets lie inside the data section, do not overlap,
// and match its shape.
func ReadSafetensors(r io.Reader) (map[string]Tensor, map[string]string, error) {
	var lenBuf [8]byte
	if _, err := io.ReadFull(r, lenBuf[:]); err != nil {
		return nil, nil, fmt.Errorf("%w: reading header length: %v", ErrSafetensors, err)
	}
	hlen := binary.LittleEndian.Uint64(lenBuf[:])
	if hlen < 2 || hlen > maxHeader {
		return nil, nil, fmt.Errorf("%w: header length %d out of range [2, %d]", ErrSafetensors, hlen, maxHeader)
	}
	js := make([]byte, hlen)
	if _, err := io.ReadFull(r, js); err != nil {
		return nil, nil, fmt.Errorf("%w: reading header: %v", ErrSafetensors, err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(js, &raw); err != nil {
		return nil, nil, fmt.Errorf("%w: header is not a JSON object: %v", ErrSafetensors, err)
	}
	var meta map[string]string
	type span struct {
		name       string
		begin, end int64
	}
	var spans []span
	entries := make(map[string]stEntry, len(raw))
	for name, msg := range raw {
		if name == "__metadata__" {
			if err := json.Unmarshal(msg, &meta); err != nil {
				return nil, nil, fmt.Errorf("%w: __metadata__ must map strings to strings: %v", ErrSafetensors, err)
			}
			continue
		}
		if name == "" {
			return nil, nil, fmt.Errorf("%w: a tensor has an empty name", ErrSafetensors)
		}
		var e stEntry
		if err := json.Unmarshal(msg, &e); err != nil {
			return nil, nil, fmt.Errorf("%w: tensor %q: %v", ErrSafetensors, name, err)
		}
		if e.DType != "F32" {
			return nil, nil, fmt.Errorf("%w: tensor %q has dtype %q; only F32 is supported", ErrSafetensors, name, e.DType)
		}
		n := numel(e.Shape)
		if n < 0 || e.DataOffsets[0] < 0 || e.DataOffsets[1]-e.DataOffsets[0] != 4*int64(n) {
			return nil, nil, fmt.Errorf("%w: tensor %q: shape %v does not match data offsets %v", ErrSafetensors, name, e.Shape, e.DataOffsets)
		}
		entries[name] = e
		spans = append(spans, span{name, e.DataOffsets[0], e.DataOffsets[1]})
	}
	sort.Slice(spans, func(i, j int) bool { return spans[i].begin < spans[j].begin })
	var pos int64
	for _, s := range spans {
		if s.begin != pos {
			return nil, nil, fmt.Errorf("%w: tensor %q starts at byte %d, expected %d (gap or overlap)", ErrSafetensors, s.name, s.begin, pos)
		}
		pos = s.end
	}
	data := make([]byte, pos)
	if _, err := io.ReadFull(r, data); err != nil {
		return nil, nil, fmt.Errorf("%w: data section shorter than the %d bytes the header declares: %v", ErrSafetensors, pos, err)
	}
	out := make(map[string]Tensor, len(entries))
	for name, e := range entries {
		b := data[e.DataOffsets[0]:e.DataOffsets[1]]
		vals := make([]float32, len(b)/4)
		for i := range vals {
			vals[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		}
		out[name] = Tensor{Name: name, Shape: e.Shape, Data: vals}
	}
	return out, meta, nil
}

// numel is the number of elements of a shape, or -1 if a dimension is
// negative or the product overflows what a file could hold.
func numel(shape []int) int {
	n := 1
	for _, s := range shape {
		if s < 0 || (s > 0 && n > (1<<40)/s) {
			return -1
		}
		n *= s
	}
	return n
}
