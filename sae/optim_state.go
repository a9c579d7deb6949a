package sae

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
)

// Optimizer state encoding, version 1, all integers little-endian:
//
//	offset  size      field
//	0       4         magic "DSOS"
//	4       2         version (1)
//	6       1         kind (1 = sgd, 2 = adam)
//	7       1         number of moment buffers B (sgd: 0 or 1, adam: 2)
//	8       8         step, int64 >= 0
//	16      8         parameters per buffer N
//	24      4·B·N     buffers, float32 bits, one after another
//	24+4BN  4         CRC-32C (Castagnoli) of all preceding bytes
const (
	stateMagic      = "DSOS"
	stateVersion    = 1
	stateHeaderSize = 24
	stateCRCSize    = 4
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// MarshalBinary implements Optimizer (and encoding.BinaryMarshaler).
func (o *optimizer) MarshalBinary() ([]byte, error) {
	size := stateHeaderSize + 4*len(o.bufs)*o.n + stateCRCSize
	b := make([]byte, stateHeaderSize, size)
	copy(b, stateMagic)
	binary.LittleEndian.PutUint16(b[4:], stateVersion)
	b[6] = byte(o.kind)
	b[7] = byte(len(o.bufs))
	binary.LittleEndian.PutUint64(b[8:], uint64(o.step))
	binary.LittleEndian.PutUint64(b[16:], uint64(o.n))
	for _, buf := range o.bufs {
		for _, x := range buf {
			b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
		}
	}
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli)), nil
}

// UnmarshalBinary implements Optimizer (and encoding.BinaryUnmarshaler).
func (o *optimizer) UnmarshalBinary(data []byte) error {
	if len(data) < stateHeaderSize+stateCRCSize {
		return fmt.Errorf("%w: %d bytes, shorter than the %d-byte header and checksum (truncated)",
			ErrOptimizerState, len(data), stateHeaderSize+stateCRCSize)
	}
	if string(data[:4]) != stateMagic {
		return fmt.Errorf("%w: bad magic %q, want %q (not optimizer state)", ErrOptimizerState, data[:4], stateMagic)
	}
	if v := binary.LittleEndian.Uint16(data[4:]); v != stateVersion {
		return fmt.Errorf("%w: format version %d, this build reads version %d", ErrOptimizerState, v, stateVersion)
	}
	kind, nbuf := optKind(data[6]), int(data[7])
	step := int64(binary.LittleEndian.Uint64(data[8:]))
	n := binary.LittleEndian.Uint64(data[16:])
	// Check the size before trusting n, so a corrupt n cannot overflow.
	if n > uint64(math.MaxInt32) || nbuf > 2 {
		return fmt.Errorf("%w: header claims %d buffers of %d parameters (corrupt)", ErrOptimizerState, nbuf, n)
	}
	want := stateHeaderSize + 4*nbuf*int(n) + stateCRCSize
	if len(data) != want {
		return fmt.Errorf("%w: %d bytes, header says %d buffers of %d parameters = %d bytes (truncated or corrupt)",
			ErrOptimizerState, len(data), nbuf, n, want)
	}
	body := data[:want-stateCRCSize]
	if got, sum := crc32.Checksum(body, castagnoli), binary.LittleEndian.Uint32(data[want-stateCRCSize:]); got != sum {
		return fmt.Errorf("%w: checksum mismatch (stored %08x, computed %08x): data is corrupt", ErrOptimizerState, sum, got)
	}
	if kind != o.kind {
		return fmt.Errorf("%w: state is for optimizer %s, this optimizer is %s", ErrOptimizerState, kind, o.kind)
	}
	if int(n) != o.n {
		return fmt.Errorf("%w: state is for %d parameters, this optimizer has %d", ErrOptimizerState, n, o.n)
	}
	if nbuf != len(o.bufs) {
		return fmt.Errorf("%w: state has %d moment buffers, this optimizer keeps %d (momentum on in one, off in the other?)",
			ErrOptimizerState, nbuf, len(o.bufs))
	}
	if step < 0 {
		return fmt.Errorf("%w: step = %d, must be >= 0", ErrOptimizerState, step)
	}
	off := stateHeaderSize
	for _, buf := range o.bufs {
		for i := range buf {
			buf[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[off:]))
			off += 4
		}
	}
	o.step = step
	return nil
}
