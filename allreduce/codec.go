package allreduce

import (
	"fmt"

	"github.com/dsae/dsae/allreduce/ringpb"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// codecName is the gRPC content-subtype of ring streams. Ring streams are
// ordinary protobuf on the wire; the codec only changes how a receiver
// decodes a Piece: straight from gRPC's receive buffers into a reused,
// aligned buffer, without materialising the message or allocating.
const codecName = "dsae-ring"

func init() { encoding.RegisterCodecV2(ringCodec{}) }

// ringCodec marshals and unmarshals proto messages as grpc's proto codec
// does, and additionally decodes Frames into a *pieceSink.
type ringCodec struct{}

func (ringCodec) Name() string { return codecName }

func (ringCodec) Marshal(v any) (mem.BufferSlice, error) {
	return protoCodec().Marshal(v)
}

func (ringCodec) Unmarshal(data mem.BufferSlice, v any) error {
	if s, ok := v.(*pieceSink); ok {
		return s.decode(data)
	}
	return protoCodec().Unmarshal(data, v)
}

func protoCodec() encoding.CodecV2 { return encoding.GetCodecV2("proto") }

// Field numbers of ring.proto used by the fast decoder.
const (
	fieldFramePiece  = 2
	fieldPieceTag    = 1
	fieldPieceDType  = 2
	fieldPieceStep   = 3
	fieldPieceChunk  = 4
	fieldPieceOffset = 5
	fieldPieceLength = 6
	fieldPieceData   = 15
	fieldTagJob      = 1
	fieldTagGen      = 2
	fieldTagStep     = 3
	fieldTagPhase    = 4
)

// pieceSink receives one Frame. A Piece's header lands in flat fields and
// its data in buf, which is allocated once (8-byte aligned) and reused.
//
// A sink is also a proto.Message (its Frame's), so that a stream from a
// peer using the plain "proto" codec decodes into the Frame; after such a
// RecvMsg, settle copies the Frame into the flat fields.
type pieceSink struct {
	frame      ringpb.Frame
	byCodec    bool // decoded by ringCodec since the last settle
	isPiece    bool
	job        []byte
	generation uint64
	step       uint64
	phase      uint32
	dtype      ringpb.DType
	ringStep   uint64
	chunk      uint64
	offset     uint64
	length     uint64
	data       []byte // view of buf
	buf        []byte
	maxData    int
}

func newPieceSink(maxData int) *pieceSink {
	words := make([]float64, (maxData+7)/8)
	return &pieceSink{buf: float64Bytes(words), maxData: maxData}
}

// ProtoReflect makes the sink decodable by any proto codec.
func (s *pieceSink) ProtoReflect() protoreflect.Message { return s.frame.ProtoReflect() }

// recv reads one frame from st into the sink.
func (s *pieceSink) recv(st interface{ RecvMsg(any) error }) error {
	s.byCodec = false
	if err := st.RecvMsg(s); err != nil {
		return err
	}
	if !s.byCodec {
		s.reset()
		return s.fromFrame(&s.frame)
	}
	return nil
}

func (s *pieceSink) reset() {
	s.isPiece = false
	s.job = s.job[:0]
	s.generation, s.step, s.phase = 0, 0, 0
	s.dtype = ringpb.DType_DTYPE_UNSPECIFIED
	s.ringStep, s.chunk, s.offset, s.length = 0, 0, 0, 0
	s.data = s.buf[:0]
}

// decode fills s from one encoded Frame. The header of a piece written by
// this package sits at the front of the first receive buffer and its data,
// the last field, spans the rest; that case is decoded in place. Anything
// else falls back to proto.Unmarshal.
func (s *pieceSink) decode(bs mem.BufferSlice) error {
	s.byCodec = true
	s.reset()
	if len(bs) > 0 {
		if ok, err := s.decodeFast(bs); ok {
			return err
		}
		s.reset()
	}
	return s.decodeSlow(bs)
}

func (s *pieceSink) decodeFast(bs mem.BufferSlice) (bool, error) {
	b := bs[0].ReadOnlyData()
	total := bs.Len()
	num, typ, n := protowire.ConsumeTag(b)
	if n < 0 || num != fieldFramePiece || typ != protowire.BytesType {
		return false, nil
	}
	b = b[n:]
	plen, n := protowire.ConsumeVarint(b)
	if n < 0 {
		return false, nil
	}
	b = b[n:]
	remaining := int(plen)
	if uint64(remaining) != plen || total-(bs[0].Len()-len(b)) != remaining {
		return false, nil
	}
	s.isPiece = true
	for remaining > 0 {
		if len(b) == 0 {
			return false, nil
		}
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return false, nil
		}
		b, remaining = b[n:], remaining-n
		switch typ {
		case protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return false, nil
			}
			b, remaining = b[n:], remaining-n
			s.setPieceVarint(num, v)
		case protowire.BytesType:
			l, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return false, nil
			}
			b, remaining = b[n:], remaining-n
			if num == fieldPieceData {
				if l != uint64(remaining) {
					return false, nil
				}
				return true, s.copyData(b, bs[1:], remaining)
			}
			if l > uint64(len(b)) {
				return false, nil
			}
			if num == fieldPieceTag && !s.decodeTag(b[:l]) {
				return false, nil
			}
			b, remaining = b[l:], remaining-int(l)
		default:
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return false, nil
			}
			b, remaining = b[n:], remaining-n
		}
	}
	return remaining == 0, nil
}

func (s *pieceSink) setPieceVarint(num protowire.Number, v uint64) {
	switch num {
	case fieldPieceDType:
		s.dtype = ringpb.DType(int32(v))
	case fieldPieceStep:
		s.ringStep = v
	case fieldPieceChunk:
		s.chunk = v
	case fieldPieceOffset:
		s.offset = v
	case fieldPieceLength:
		s.length = v
	}
}

func (s *pieceSink) decodeTag(b []byte) bool {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return false
		}
		b = b[n:]
		switch {
		case num == fieldTagJob && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return false
			}
			s.job = append(s.job[:0], v...)
			b = b[n:]
		case typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return false
			}
			b = b[n:]
			switch num {
			case fieldTagGen:
				s.generation = v
			case fieldTagStep:
				s.step = v
			case fieldTagPhase:
				s.phase = uint32(v)
			}
		default:
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return false
			}
			b = b[n:]
		}
	}
	return true
}

// copyData copies the l bytes of a piece's data, which start with head and
// continue in rest, into s.buf.
func (s *pieceSink) copyData(head []byte, rest mem.BufferSlice, l int) error {
	if l > s.maxData {
		return fmt.Errorf("piece of %d bytes exceeds the %d-byte limit", l, s.maxData)
	}
	s.data = s.buf[:l]
	k := copy(s.data, head)
	for _, b := range rest {
		k += copy(s.data[k:], b.ReadOnlyData())
	}
	if k != l {
		return fmt.Errorf("piece data truncated: %d of %d bytes", k, l)
	}
	return nil
}

func (s *pieceSink) decodeSlow(bs mem.BufferSlice) error {
	var f ringpb.Frame
	if err := proto.Unmarshal(bs.Materialize(), &f); err != nil {
		return err
	}
	return s.fromFrame(&f)
}

func (s *pieceSink) fromFrame(f *ringpb.Frame) error {
	p := f.GetPiece()
	if p == nil {
		return nil // not a piece; the caller refuses it
	}
	s.isPiece = true
	if t := p.GetTag(); t != nil {
		s.job = append(s.job[:0], t.GetJob()...)
		s.generation, s.step, s.phase = t.GetGeneration(), t.GetStep(), t.GetPhase()
	}
	s.dtype = p.GetDtype()
	s.ringStep, s.chunk = uint64(p.GetRingStep()), uint64(p.GetChunk())
	s.offset, s.length = p.GetOffset(), p.GetLength()
	return s.copyData(p.GetData(), nil, len(p.GetData()))
}
