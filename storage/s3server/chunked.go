package s3server

import (
	"bufio"
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"hash"
	"hash/crc32"
	"io"
	"strconv"
	"strings"

	"github.com/minio/crc64nvme"
)

const (
	maxChunkLine     = 4096 // longest chunk header or trailer line accepted
	maxTrailerLines  = 16
	chunkSigPrefix   = "chunk-signature="
	trailerSigHeader = "x-amz-trailer-signature"
)

// chunkedReader decodes an aws-chunked request body:
//
//	hex-size[;chunk-signature=sig]\r\n data \r\n ... 0[;chunk-signature=sig]\r\n [trailer] \r\n
//
// In signed modes each chunk signature chains from the previous one (the
// seed is the request signature) and is checked when the chunk ends, before
// the next chunk is read. A trailer, when declared, carries a checksum of
// the whole payload (and, in the signed-trailer mode, its own signature);
// the checksum is verified at the end. Read returns an *apiError for any
// malformed or forged input and io.EOF only after the whole body verified.
// Memory use is bounded by the bufio buffer whatever the chunk sizes.
type chunkedReader struct {
	br            *bufio.Reader
	auth          *authContext // nil when chunks are unsigned
	prevSig       string
	trailer       bool // a trailer follows the final chunk
	signedTrailer bool
	trailerName   string    // checksum header the client declared, lowercased
	sum           hash.Hash // running checksum of the payload for trailerName
	chunkHash     hash.Hash
	left          int64 // bytes left in the current chunk
	chunkSig      string
	decoded       int64
	limit         int64 // declared decoded length, or -1
	done          bool
	err           error
}

// newChunkedReader returns a decoder for body in the given payload mode
// (one of the STREAMING-* values). auth must be non-nil for signed modes.
// trailerName is the X-Amz-Trailer value (may be empty); decodedLen the
// x-amz-decoded-content-length (-1 if absent).
func newChunkedReader(body io.Reader, mode string, auth *authContext, trailerName string, decodedLen int64) (*chunkedReader, *apiError) {
	c := &chunkedReader{br: bufio.NewReaderSize(body, 64<<10), limit: decodedLen, chunkHash: sha256.New()}
	switch mode {
	case streamingPayload:
		c.auth = auth
	case streamingPayloadSigned:
		c.auth, c.trailer, c.signedTrailer = auth, true, true
	case streamingUnsignedTrail:
		c.trailer = true
	default:
		return nil, errInvalidArgument.withMessage("unknown streaming payload mode " + mode)
	}
	if c.auth != nil {
		c.prevSig = c.auth.seedSig
	}
	c.trailerName = strings.ToLower(strings.TrimSpace(trailerName))
	if c.trailerName != "" {
		if !c.trailer {
			return nil, errInvalidArgument.withMessage("x-amz-trailer requires a *-TRAILER payload mode")
		}
		c.sum = checksumHash(c.trailerName)
		if c.sum == nil {
			return nil, errNotImplemented.withMessage("unsupported trailing checksum " + c.trailerName)
		}
	}
	return c, nil
}

// checksumHash returns the hash for an x-amz-checksum-* trailer name.
func checksumHash(name string) hash.Hash {
	switch name {
	case "x-amz-checksum-crc32":
		return crc32.NewIEEE()
	case "x-amz-checksum-crc32c":
		return crc32.New(crc32.MakeTable(crc32.Castagnoli))
	case "x-amz-checksum-crc64nvme":
		return crc64nvme.New()
	case "x-amz-checksum-sha1":
		return sha1.New()
	case "x-amz-checksum-sha256":
		return sha256.New()
	}
	return nil
}

func (c *chunkedReader) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	for c.left == 0 {
		if c.done {
			c.err = io.EOF
			return 0, io.EOF
		}
		if err := c.nextChunk(); err != nil {
			c.err = err
			return 0, err
		}
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.br.Read(p)
	c.left -= int64(n)
	c.decoded += int64(n)
	c.chunkHash.Write(p[:n])
	if c.sum != nil {
		c.sum.Write(p[:n])
	}
	if c.left == 0 {
		if ferr := c.endChunk(); ferr != nil {
			c.err = ferr
			return n, ferr
		}
	} else if err == io.EOF {
		c.err = errIncompleteBody
		return n, c.err
	}
	if err != nil && err != io.EOF {
		c.err = err
		return n, err
	}
	return n, nil
}

// readLine returns the next line without its line ending. strict requires
// the line to end in CRLF.
func (c *chunkedReader) readLine(strict bool) (string, error) {
	line, err := c.br.ReadSlice('\n')
	if err == bufio.ErrBufferFull || len(line) > maxChunkLine {
		return "", errMalformedChunk.withMessage("aws-chunked line too long")
	}
	if err == io.EOF && len(line) == 0 {
		return "", io.EOF
	}
	if err != nil && err != io.EOF {
		return "", err
	}
	if err == io.EOF {
		return "", errIncompleteBody
	}
	switch {
	case bytes.HasSuffix(line, []byte("\r\n")):
		line = line[:len(line)-2]
	case strict:
		return "", errMalformedChunk.withMessage("aws-chunked line must end in CRLF")
	default:
		line = line[:len(line)-1]
	}
	return string(line), nil
}

// nextChunk reads a chunk header; for the final (empty) chunk it also
// verifies the signature and consumes the trailer.
func (c *chunkedReader) nextChunk() error {
	line, err := c.readLine(true)
	if err == io.EOF {
		return errIncompleteBody
	}
	if err != nil {
		return err
	}
	sizeStr, ext, _ := strings.Cut(line, ";")
	if len(sizeStr) == 0 || len(sizeStr) > 15 {
		return errMalformedChunk.withMessage("bad aws-chunked size " + strconv.Quote(sizeStr))
	}
	size, perr := strconv.ParseInt(sizeStr, 16, 64)
	if perr != nil || size < 0 {
		return errMalformedChunk.withMessage("bad aws-chunked size " + strconv.Quote(sizeStr))
	}
	if c.limit >= 0 && c.decoded+size > c.limit {
		return errMalformedChunk.withMessage("aws-chunked payload longer than x-amz-decoded-content-length")
	}
	c.chunkSig = ""
	if c.auth != nil {
		sig, ok := strings.CutPrefix(ext, chunkSigPrefix)
		if !ok || len(sig) != 64 {
			return errMalformedChunk.withMessage("chunk without chunk-signature")
		}
		c.chunkSig = sig
	}
	c.chunkHash.Reset()
	if size > 0 {
		c.left = size
		return nil
	}
	// Final chunk.
	if err := c.verifyChunk(); err != nil {
		return err
	}
	if c.trailer {
		if err := c.readTrailer(); err != nil {
			return err
		}
	} else if line, err := c.readLine(false); err != nil && err != io.EOF {
		return err
	} else if err == nil && line != "" {
		return errMalformedChunk.withMessage("data after the final aws-chunked chunk")
	}
	if c.limit >= 0 && c.decoded != c.limit {
		return errIncompleteBody
	}
	c.done = true
	return nil
}

// endChunk consumes the CRLF after chunk data and checks its signature.
func (c *chunkedReader) endChunk() error {
	var crlf [2]byte
	if _, err := io.ReadFull(c.br, crlf[:]); err != nil {
		return errIncompleteBody
	}
	if crlf != [2]byte{'\r', '\n'} {
		return errMalformedChunk.withMessage("aws-chunked data not followed by CRLF")
	}
	return c.verifyChunk()
}

func (c *chunkedReader) verifyChunk() error {
	if c.auth == nil {
		return nil
	}
	sts := "AWS4-HMAC-SHA256-PAYLOAD\n" + c.auth.amzDate + "\n" + c.auth.scope + "\n" +
		c.prevSig + "\n" + emptySHA256 + "\n" + hex.EncodeToString(c.chunkHash.Sum(nil))
	want := hmacHex(c.auth.signingKey, sts)
	if !equalSig(want, c.chunkSig) {
		return errSignatureDoesNotMatch.withMessage("chunk signature does not match")
	}
	c.prevSig = want
	return nil
}

// readTrailer reads trailer lines up to the blank line that ends them,
// checks the trailer signature (signed mode) and the declared checksum.
func (c *chunkedReader) readTrailer() error {
	var signed bytes.Buffer
	values := map[string]string{}
	sawSig := false
	for i := 0; ; i++ {
		if i > maxTrailerLines {
			return errMalformedChunk.withMessage("too many trailer lines")
		}
		line, err := c.readLine(false)
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if line == "" {
			// minio-go puts a blank line between checksum and signature.
			if !c.signedTrailer || sawSig {
				break
			}
			continue
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			return errMalformedChunk.withMessage("trailer line without ':'")
		}
		name = strings.ToLower(strings.TrimSpace(name))
		value = strings.TrimSpace(value)
		if name == trailerSigHeader {
			if !c.signedTrailer || sawSig {
				return errMalformedChunk.withMessage("unexpected trailer signature")
			}
			sum := sha256.Sum256(signed.Bytes())
			sts := "AWS4-HMAC-SHA256-TRAILER\n" + c.auth.amzDate + "\n" + c.auth.scope + "\n" +
				c.prevSig + "\n" + hex.EncodeToString(sum[:])
			if !equalSig(hmacHex(c.auth.signingKey, sts), value) {
				return errSignatureDoesNotMatch.withMessage("trailer signature does not match")
			}
			sawSig = true
			continue
		}
		if sawSig {
			return errMalformedChunk.withMessage("trailer header after the trailer signature")
		}
		values[name] = value
		signed.WriteString(name + ":" + value + "\n")
	}
	if c.signedTrailer && !sawSig {
		return errMalformedChunk.withMessage("missing trailer signature")
	}
	if c.sum != nil {
		got, ok := values[c.trailerName]
		if !ok {
			return errMalformedChunk.withMessage("declared trailer " + c.trailerName + " missing")
		}
		if got != base64.StdEncoding.EncodeToString(c.sum.Sum(nil)) {
			return errChecksumMismatch
		}
	}
	return nil
}
