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

// float64Bytes views w as bytes; used for 8-byte-aligned scratch buffers.
func float64Bytes(w []float64) []byte {
	if len(w) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&w[0])), len(w)*8)
}

// wireBytes returns the little-endian encoding of src: on a little-endian
// host a view of src itself (valid while src is), otherwise an encoding in
// scratch, which must hold len(src)*elemSize bytes.
func wireBytes[T elem](src []T, scratch []byte) []byte {
	if len(src) == 0 {
		return nil
	}
	size := elemSize[T]()
	if littleEndian {
		return unsafe.Slice((*byte)(unsafe.Pointer(&src[0])), len(src)*size)
	}
	return encodeLE(src, scratch[:len(src)*size])
}

func encodeLE[T elem](src []T, dst []byte) []byte {
	if elemSize[T]() == 4 {
		for i, v := range src {
			binary.LittleEndian.PutUint32(dst[4*i:], math.Float32bits(float32(v)))
		}
		return dst
	}
	for i, v := range src {
		binary.LittleEndian.PutUint64(dst[8*i:], math.Float64bits(float64(v)))
	}
	return dst
}

// wireElems views wire data (little-endian, 8-byte aligned, len a multiple
// of the element size) as elements. On a big-endian host it decodes into
// scratch, which must have room for them.
func wireElems[T elem](data []byte, scratch []T) []T {
	size := elemSize[T]()
	n := len(data) / size
	if n == 0 {
		return nil
	}
	if littleEndian {
		return unsafe.Slice((*T)(unsafe.Pointer(&data[0])), n)
	}
	return decodeLE(data, scratch[:n])
}

func decodeLE[T elem](data []byte, dst []T) []T {
	if elemSize[T]() == 4 {
		for i := range dst {
			dst[i] = T(math.Float32frombits(binary.LittleEndian.Uint32(data[4*i:])))
		}
		return dst
	}
	for i := range dst {
		dst[i] = T(math.Float64frombits(binary.LittleEndian.Uint64(data[8*i:])))
	}
	return dst
}

// addInto sets dst[i] += src[i]. Addition is commutative in IEEE 754, so
// the result depends only on which partial sum arrives, not on operand order.
func addInto[T elem](dst, src []T) {
	src = src[:len(dst)]
	i := 0
	for ; i+8 <= len(dst); i += 8 {
		d := dst[i : i+8 : i+8]
		s := src[i : i+8 : i+8]
		d[0] += s[0]
		d[1] += s[1]
		d[2] += s[2]
		d[3] += s[3]
		d[4] += s[4]
		d[5] += s[5]
		d[6] += s[6]
		d[7] += s[7]
	}
	for ; i < len(dst); i++ {
		dst[i] += src[i]
	}
}
