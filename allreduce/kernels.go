package allreduce

import (
	"encoding/binary"
	"math"
	"unsafe"

	"github.com/dsae/dsae/allreduce/ringpb"
)

// elem is an element type the ring reduces.
type elem interface{ float32 | float64 }

// littleEndian reports whether the host stores numbers little-endian, in
// which case buffers go on the wire as they are in memory.
var littleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

func elemSize[T elem]() int {
	var z T
	return int(unsafe.Sizeof(z))
}

func dtypeOf[T elem]() ringpb.DType {
	if elemSize[T]() == 4 {
		return ringpb.DType_DTYPE_FLOAT32
	}
	return ringpb.DType_DTYPE_FLOAT64
}

// asBytes views v's memory as bytes (always aligned: bytes need none).
func asBytes[T elem](v []T) []byte {
	if len(v) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), len(v)*elemSize[T]())
}

// appendLE appends the little-endian encoding of src to b.
func appendLE[T elem](b []byte, src []T) []byte {
	if littleEndian {
		return append(b, asBytes(src)...)
	}
	if elemSize[T]() == 4 {
		for _, v := range src {
			b = binary.LittleEndian.AppendUint32(b, math.Float32bits(float32(v)))
		}
		return b
	}
	for _, v := range src {
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(float64(v)))
	}
	return b
}

// copyLE sets dst from the little-endian encoding in b (len(b) is
// len(dst)*elemSize). b may have any alignment.
func copyLE[T elem](dst []T, b []byte) {
	if littleEndian {
		copy(asBytes(dst), b)
		return
	}
	if elemSize[T]() == 4 {
		for i := range dst {
			dst[i] = T(math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:])))
		}
		return
	}
	for i := range dst {
		dst[i] = T(math.Float64frombits(binary.LittleEndian.Uint64(b[8*i:])))
	}
}

// addLE adds the little-endian encoding in b (len(b) is len(dst)*elemSize)
// into dst. b may have any alignment. Addition is commutative in IEEE 754,
// so the result depends only on which partial sum arrives.
func addLE[T elem](dst []T, b []byte) {
	if elemSize[T]() == 4 {
		b = b[:4*len(dst)]
		i := 0
		for ; i+4 <= len(dst); i += 4 {
			d := dst[i : i+4 : i+4]
			s := b[4*i : 4*i+16 : 4*i+16]
			d[0] += T(math.Float32frombits(binary.LittleEndian.Uint32(s[0:])))
			d[1] += T(math.Float32frombits(binary.LittleEndian.Uint32(s[4:])))
			d[2] += T(math.Float32frombits(binary.LittleEndian.Uint32(s[8:])))
			d[3] += T(math.Float32frombits(binary.LittleEndian.Uint32(s[12:])))
		}
		for ; i < len(dst); i++ {
			dst[i] += T(math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:])))
		}
		return
	}
	b = b[:8*len(dst)]
	for i := range dst {
		dst[i] += T(math.Float64frombits(binary.LittleEndian.Uint64(b[8*i:])))
	}
}
