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
// ordinary protobuf on the wire (a peer may use the plain proto codec); this
// codec only avoids copies: a Piece goes out as its encoded header plus the
// caller's buffer itself (or one pooled copy of it when small or without a
// tracker), and comes in decoded straight from gRPC's receive buffers into
// the destination, adding as it goes, without materialising the message or
// allocating.
const codecName = "dsae-ring"

func init() { encoding.RegisterCodecV2(ringCodec{}) }

// ringCodec handles *pieceOut and *pieceSink and delegates every other
// message to grpc's proto codec.
type ringCodec struct{}

func (ringCodec) Name() string { return codecName }

func (ringCodec) Marshal(v any) (mem.BufferSlice, error) {
	if p, ok := v.(*pieceOut); ok {
		return p.marshal(), nil
	}
	return protoCodec().Marshal(v)
}

func (ringCodec) Unmarshal(data mem.BufferSlice, v any) error {
	if s, ok := v.(*pieceSink); ok {
		return s.decode(data)
	}
	return protoCodec().Unmarshal(data, v)
}

func protoCodec() encoding.CodecV2 { return encoding.GetCodecV2("proto") }

// Field numbers of ring.proto used by the hand-written encoder and decoder.
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

// pieceHeader is every field of a Frame holding a Piece except its data.
type pieceHeader struct {
	job        []byte
	generation uint64
	step       uint64
	phase      uint32
	dtype      ringpb.DType
	ringStep   uint64
	chunk      uint64
	offset     uint64
	length     uint64
	dataLen    int
}

// pieceOut is a Piece to send: its header and the elements of one of f32
// or f64, encoded little-endian when marshalled.
type pieceOut struct {
	pieceHeader
	f32 []float32
	f64 []float64
	hdr []byte // reused encoding scratch
	// track, when set, lets large pieces go out without a copy: gRPC reads
	// the caller's buffer and track counts what it still holds.
	track *sendTracker
}

// marshal encodes the Frame{piece}: the header into a pooled buffer and the
// data either after it (small pieces, or no tracker) or, for pieces of
// zeroCopyMinBytes and more on a little-endian host, as a second buffer
// that is the caller's memory, released to p.track once gRPC has written it.
func (p *pieceOut) marshal() mem.BufferSlice {
	h := p.hdr[:0]
	tagLen := protowire.SizeTag(fieldTagJob) + protowire.SizeBytes(len(p.job)) +
		protowire.SizeTag(fieldTagGen) + protowire.SizeVarint(p.generation) +
		protowire.SizeTag(fieldTagStep) + protowire.SizeVarint(p.step) +
		protowire.SizeTag(fieldTagPhase) + protowire.SizeVarint(uint64(p.phase))
	h = protowire.AppendTag(h, fieldPieceTag, protowire.BytesType)
	h = protowire.AppendVarint(h, uint64(tagLen))
	h = protowire.AppendTag(h, fieldTagJob, protowire.BytesType)
	h = protowire.AppendBytes(h, p.job)
	h = appendVarintField(h, fieldTagGen, p.generation)
	h = appendVarintField(h, fieldTagStep, p.step)
	h = appendVarintField(h, fieldTagPhase, uint64(p.phase))
	h = appendVarintField(h, fieldPieceDType, uint64(p.dtype))
	h = appendVarintField(h, fieldPieceStep, p.ringStep)
	h = appendVarintField(h, fieldPieceChunk, p.chunk)
	h = appendVarintField(h, fieldPieceOffset, p.offset)
	h = appendVarintField(h, fieldPieceLength, p.length)
	p.hdr = h
	n := 4*len(p.f32) + 8*len(p.f64)
	pieceLen := len(h) + protowire.SizeTag(fieldPieceData) + protowire.SizeBytes(n)
	total := protowire.SizeTag(fieldFramePiece) + protowire.SizeBytes(pieceLen)
	zeroCopy := p.track != nil && littleEndian && n >= zeroCopyMinBytes
	size := total
	if zeroCopy {
		size -= n
	}
	buf := ringPool.Get(size)
	b := (*buf)[:0]
	b = protowire.AppendTag(b, fieldFramePiece, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(pieceLen))
	b = append(b, h...)
	b = protowire.AppendTag(b, fieldPieceData, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(n))
	if zeroCopy {
		*buf = b
		var data []byte
		if p.f32 != nil {
			data = asBytes(p.f32)
		} else {
			data = asBytes(p.f64)
		}
		return mem.BufferSlice{mem.NewBuffer(buf, ringPool), p.track.wrap(data)}
	}
	if p.f32 != nil {
		b = appendLE(b, p.f32)
	} else {
		b = appendLE(b, p.f64)
	}
	*buf = b
	return mem.BufferSlice{mem.NewBuffer(buf, ringPool)}
}

func appendVarintField(b []byte, num protowire.Number, v uint64) []byte {
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

// pieceTarget receives the pieces a pieceSink decodes.
type pieceTarget interface {
	// admit sees the header of a piece (dataLen set) and says whether to
	// take its data; it records its own verdict for the caller of RecvMsg.
	admit(h *pieceHeader) bool
	// take receives the data of an admitted piece, in order, in segments
	// split at arbitrary byte positions.
	take(seg []byte)
}

// pieceSink receives one Frame per RecvMsg. It decodes the header, asks its
// target whether to take the piece, and streams the data to the target.
//
// A sink is also a proto.Message (its Frame's), so that a stream from a
// peer using the plain "proto" codec decodes into the Frame; recv then
// hands that Frame to the target.
type pieceSink struct {
	frame   ringpb.Frame
	byCodec bool // decoded by ringCodec since recv started
	isPiece bool
	pieceHeader
	target pieceTarget // nil drops every piece
}

// ProtoReflect makes the sink decodable by any proto codec.
func (s *pieceSink) ProtoReflect() protoreflect.Message { return s.frame.ProtoReflect() }

// recv reads one frame from st into the sink and its target.
func (s *pieceSink) recv(st interface{ RecvMsg(any) error }) error {
	s.byCodec = false
	if err := st.RecvMsg(s); err != nil {
		return err
	}
	if !s.byCodec {
		s.reset()
		s.fromFrame(&s.frame)
	}
	return nil
}

func (s *pieceSink) reset() {
	s.isPiece = false
	job := s.job[:0]
	s.pieceHeader = pieceHeader{job: job}
}

func (s *pieceSink) admit() bool { return s.target != nil && s.target.admit(&s.pieceHeader) }

// decode handles one encoded Frame. A piece's header sits at the front of
// the first receive buffer and its data, the last field, spans the rest;
// that case is decoded in place. Anything else falls back to proto.Unmarshal.
func (s *pieceSink) decode(bs mem.BufferSlice) error {
	s.byCodec = true
	s.reset()
	if len(bs) > 0 && s.decodeFast(bs) {
		return nil
	}
	s.reset()
	var f ringpb.Frame
	if err := proto.Unmarshal(bs.Materialize(), &f); err != nil {
		return err
	}
	s.fromFrame(&f)
	return nil
}

// decodeFast reports false, having handed nothing to the target, when the
// frame is not laid out as this package writes it.
func (s *pieceSink) decodeFast(bs mem.BufferSlice) bool {
	b := bs[0].ReadOnlyData()
	num, typ, n := protowire.ConsumeTag(b)
	if n < 0 || num != fieldFramePiece || typ != protowire.BytesType {
		return false
	}
	b = b[n:]
	plen, n := protowire.ConsumeVarint(b)
	if n < 0 {
		return false
	}
	b = b[n:]
	remaining := int(plen)
	if uint64(remaining) != plen || bs.Len()-(bs[0].Len()-len(b)) != remaining {
		return false
	}
	for remaining > 0 {
		if len(b) == 0 {
			return false
		}
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return false
		}
		b, remaining = b[n:], remaining-n
		switch typ {
		case protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return false
			}
			b, remaining = b[n:], remaining-n
			s.setPieceVarint(num, v)
		case protowire.BytesType:
			l, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return false
			}
			b, remaining = b[n:], remaining-n
			if num == fieldPieceData {
				if l != uint64(remaining) {
					return false
				}
				s.isPiece, s.dataLen = true, remaining
				if s.admit() {
					s.target.take(b[:min(len(b), remaining)])
					for _, buf := range bs[1:] {
						s.target.take(buf.ReadOnlyData())
					}
				}
				return true
			}
			if l > uint64(len(b)) {
				return false
			}
			if num == fieldPieceTag && !s.decodeTag(b[:l]) {
				return false
			}
			b, remaining = b[l:], remaining-int(l)
		default:
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return false
			}
			b, remaining = b[n:], remaining-n
		}
	}
	if remaining != 0 {
		return false
	}
	// A piece without a data field (empty data).
	s.isPiece = true
	s.admit()
	return true
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

// fromFrame hands a Frame decoded by proto to the target.
func (s *pieceSink) fromFrame(f *ringpb.Frame) {
	p := f.GetPiece()
	if p == nil {
		return // not a piece; the target never sees it and the caller refuses it
	}
	s.isPiece = true
	if t := p.GetTag(); t != nil {
		s.job = append(s.job[:0], t.GetJob()...)
		s.generation, s.step, s.phase = t.GetGeneration(), t.GetStep(), t.GetPhase()
	}
	s.dtype = p.GetDtype()
	s.ringStep, s.chunk = uint64(p.GetRingStep()), uint64(p.GetChunk())
	s.offset, s.length = p.GetOffset(), p.GetLength()
	s.dataLen = len(p.GetData())
	if s.admit() {
		s.target.take(p.GetData())
	}
}

// String describes a header for error messages.
func (h *pieceHeader) String() string {
	return fmt.Sprintf("%v ring step %d chunk %d offset %d length %d with %d bytes",
		h.dtype, h.ringStep, h.chunk, h.offset, h.length, h.dataLen)
}
