package s3server

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Payload modes named by the X-Amz-Content-Sha256 header.
const (
	unsignedPayload        = "UNSIGNED-PAYLOAD"
	streamingPayload       = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
	streamingPayloadSigned = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
	streamingUnsignedTrail = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
	emptySHA256            = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

	algorithmV4   = "AWS4-HMAC-SHA256"
	amzDateFmt    = "20060102T150405Z"
	scopeDateFmt  = "20060102"
	maxPresignTTL = 7 * 24 * time.Hour
)

// authContext is what a verified request carries on to the body decoder:
// the payload mode and, for signed streaming, the key and seed signature
// that chain the chunk signatures.
type authContext struct {
	payload    string // value of X-Amz-Content-Sha256 (or UNSIGNED-PAYLOAD when presigned)
	signingKey []byte
	seedSig    string
	amzDate    string
	scope      string
}

// authenticate verifies the request's Signature V4 (header or presigned
// query form) against the configured credentials.
func (s *Server) authenticate(r *http.Request, now time.Time) (*authContext, *apiError) {
	if h := r.Header.Get("Authorization"); h != "" {
		return s.authHeader(r, h, now)
	}
	if r.URL.Query().Get("X-Amz-Algorithm") != "" {
		return s.authPresigned(r, now)
	}
	return nil, errAccessDenied.withMessage("Anonymous access is not allowed; sign requests with AWS Signature Version 4.")
}

// sigV4Header holds the parsed fields of an AWS4-HMAC-SHA256 Authorization header.
type sigV4Header struct {
	accessKey     string
	date          string // yyyymmdd from the scope
	region        string
	service       string
	signedHeaders []string
	signature     string
}

// parseAuthHeader parses
//
//	AWS4-HMAC-SHA256 Credential=AK/20060102/region/s3/aws4_request, SignedHeaders=a;b, Signature=hex
func parseAuthHeader(h string) (sigV4Header, *apiError) {
	var out sigV4Header
	alg, rest, ok := strings.Cut(strings.TrimSpace(h), " ")
	if !ok || alg != algorithmV4 {
		return out, errUnsupportedSignature
	}
	for _, field := range strings.Split(rest, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(field), "=")
		if !ok {
			return out, errAuthHeaderMalformed
		}
		switch k {
		case "Credential":
			if err := out.parseCredential(v); err != nil {
				return out, err
			}
		case "SignedHeaders":
			out.signedHeaders = strings.Split(v, ";")
		case "Signature":
			out.signature = v
		default:
			return out, errAuthHeaderMalformed
		}
	}
	if out.accessKey == "" || len(out.signedHeaders) == 0 || out.signature == "" {
		return out, errAuthHeaderMalformed
	}
	return out, nil
}

// parseCredential parses AK/yyyymmdd/region/service/aws4_request. The
// access key itself may not contain '/', so the last four fields are fixed.
func (h *sigV4Header) parseCredential(v string) *apiError {
	parts := strings.Split(v, "/")
	if len(parts) < 5 {
		return errAuthHeaderMalformed.withMessage("Credential must be AccessKey/date/region/service/aws4_request.")
	}
	n := len(parts)
	h.accessKey = strings.Join(parts[:n-4], "/")
	h.date, h.region, h.service = parts[n-4], parts[n-3], parts[n-2]
	if parts[n-1] != "aws4_request" || h.service != "s3" || len(h.date) != 8 {
		return errAuthHeaderMalformed.withMessage("Credential scope must be date/region/s3/aws4_request.")
	}
	return nil
}

func (s *Server) authHeader(r *http.Request, h string, now time.Time) (*authContext, *apiError) {
	hdr, aerr := parseAuthHeader(h)
	if aerr != nil {
		return nil, aerr
	}
	secret, ok := s.secretFor(hdr.accessKey)
	if !ok {
		return nil, errInvalidAccessKeyID
	}
	amzDate := r.Header.Get("X-Amz-Date")
	if amzDate == "" {
		amzDate = r.Header.Get("Date")
	}
	t, err := time.Parse(amzDateFmt, amzDate)
	if err != nil {
		return nil, errAccessDenied.withMessage("X-Amz-Date is missing or not in the form 20060102T150405Z.")
	}
	if d := now.Sub(t); d > s.cfg.MaxClockSkew || d < -s.cfg.MaxClockSkew {
		return nil, errRequestTimeTooSkewed
	}
	if t.Format(scopeDateFmt) != hdr.date {
		return nil, errAuthHeaderMalformed.withMessage("The credential date does not match X-Amz-Date.")
	}
	payload := r.Header.Get("X-Amz-Content-Sha256")
	if payload == "" {
		return nil, errInvalidArgument.withMessage("x-amz-content-sha256 header is required.")
	}
	if !validPayloadHash(payload) {
		return nil, errInvalidArgument.withMessage("x-amz-content-sha256 must be a hex SHA-256 or a known payload mode.")
	}
	if !containsHost(hdr.signedHeaders) {
		return nil, errAuthHeaderMalformed.withMessage("SignedHeaders must include host.")
	}
	scope := hdr.date + "/" + hdr.region + "/s3/aws4_request"
	canon := canonicalRequest(r, r.URL.Query(), hdr.signedHeaders, payload, "")
	key := signingKey(secret, hdr.date, hdr.region)
	want := hmacHex(key, stringToSign(amzDate, scope, canon))
	if !equalSig(want, hdr.signature) {
		return nil, errSignatureDoesNotMatch
	}
	return &authContext{payload: payload, signingKey: key, seedSig: want, amzDate: amzDate, scope: scope}, nil
}

func (s *Server) authPresigned(r *http.Request, now time.Time) (*authContext, *apiError) {
	q := r.URL.Query()
	if q.Get("X-Amz-Algorithm") != algorithmV4 {
		return nil, errUnsupportedSignature
	}
	var hdr sigV4Header
	if aerr := hdr.parseCredential(q.Get("X-Amz-Credential")); aerr != nil {
		return nil, errAuthQueryMalformed.withMessage(aerr.Message)
	}
	hdr.signedHeaders = strings.Split(q.Get("X-Amz-SignedHeaders"), ";")
	hdr.signature = q.Get("X-Amz-Signature")
	amzDate := q.Get("X-Amz-Date")
	t, err := time.Parse(amzDateFmt, amzDate)
	if err != nil || hdr.signature == "" || !containsHost(hdr.signedHeaders) || t.Format(scopeDateFmt) != hdr.date {
		return nil, errAuthQueryMalformed
	}
	expires, err := strconv.ParseInt(q.Get("X-Amz-Expires"), 10, 64)
	if err != nil || expires < 1 || time.Duration(expires)*time.Second > maxPresignTTL {
		return nil, errAuthQueryMalformed.withMessage("X-Amz-Expires must be between 1 and 604800 seconds.")
	}
	secret, ok := s.secretFor(hdr.accessKey)
	if !ok {
		return nil, errInvalidAccessKeyID
	}
	if now.Before(t.Add(-s.cfg.MaxClockSkew)) {
		return nil, errRequestTimeTooSkewed
	}
	if now.After(t.Add(time.Duration(expires) * time.Second)) {
		return nil, errExpiredToken
	}
	payload := unsignedPayload
	if v := q.Get("X-Amz-Content-Sha256"); v != "" {
		payload = v
	}
	scope := hdr.date + "/" + hdr.region + "/s3/aws4_request"
	canon := canonicalRequest(r, q, hdr.signedHeaders, payload, "X-Amz-Signature")
	key := signingKey(secret, hdr.date, hdr.region)
	want := hmacHex(key, stringToSign(amzDate, scope, canon))
	if !equalSig(want, hdr.signature) {
		return nil, errSignatureDoesNotMatch
	}
	if payload != unsignedPayload && !isHexSHA256(payload) {
		return nil, errInvalidArgument.withMessage("presigned requests cannot use streaming payloads.")
	}
	return &authContext{payload: payload, signingKey: key, seedSig: want, amzDate: amzDate, scope: scope}, nil
}

func (s *Server) secretFor(accessKey string) (string, bool) {
	if subtle.ConstantTimeCompare([]byte(accessKey), []byte(s.cfg.AccessKey)) == 1 {
		return s.cfg.SecretKey, true
	}
	return "", false
}

func containsHost(signed []string) bool {
	for _, h := range signed {
		if h == "host" {
			return true
		}
	}
	return false
}

func validPayloadHash(p string) bool {
	switch p {
	case unsignedPayload, streamingPayload, streamingPayloadSigned, streamingUnsignedTrail:
		return true
	}
	return isHexSHA256(p)
}

func isHexSHA256(p string) bool {
	if len(p) != 64 {
		return false
	}
	_, err := hex.DecodeString(p)
	return err == nil
}

// canonicalRequest builds the SigV4 canonical request:
//
//	Method \n CanonicalURI \n CanonicalQuery \n CanonicalHeaders \n SignedHeaders \n Payload
//
// skipQuery names a query parameter left out (the signature itself, for
// presigned URLs).
func canonicalRequest(r *http.Request, q url.Values, signed []string, payload, skipQuery string) string {
	var b strings.Builder
	b.WriteString(r.Method)
	b.WriteByte('\n')
	b.WriteString(uriEncode(r.URL.Path, false))
	b.WriteByte('\n')
	b.WriteString(canonicalQuery(q, skipQuery))
	b.WriteByte('\n')
	for _, h := range signed {
		b.WriteString(h)
		b.WriteByte(':')
		b.WriteString(canonicalHeaderValue(r, h))
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	b.WriteString(strings.Join(signed, ";"))
	b.WriteByte('\n')
	b.WriteString(payload)
	return b.String()
}

func canonicalHeaderValue(r *http.Request, name string) string {
	switch name {
	case "host":
		return r.Host
	case "content-length":
		if v := r.Header.Get("Content-Length"); v != "" {
			return v
		}
		return strconv.FormatInt(r.ContentLength, 10)
	case "transfer-encoding":
		return strings.Join(r.TransferEncoding, ",")
	}
	vals := r.Header.Values(name)
	out := make([]string, len(vals))
	for i, v := range vals {
		out[i] = trimAll(v)
	}
	return strings.Join(out, ",")
}

// trimAll trims a header value and collapses inner runs of spaces to one.
func trimAll(v string) string {
	return strings.Join(strings.Fields(v), " ")
}

func canonicalQuery(q url.Values, skip string) string {
	type kv struct{ k, v string }
	var pairs []kv
	for k, vs := range q {
		if k == skip {
			continue
		}
		for _, v := range vs {
			pairs = append(pairs, kv{uriEncode(k, true), uriEncode(v, true)})
		}
	}
	sort.Slice(pairs, func(i, j int) bool {
		if pairs[i].k != pairs[j].k {
			return pairs[i].k < pairs[j].k
		}
		return pairs[i].v < pairs[j].v
	})
	var b strings.Builder
	for i, p := range pairs {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(p.k)
		b.WriteByte('=')
		b.WriteString(p.v)
	}
	return b.String()
}

// uriEncode percent-encodes every byte except the unreserved characters
// A-Z a-z 0-9 - _ . ~ (and '/' unless encodeSlash), as SigV4 requires.
func uriEncode(s string, encodeSlash bool) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9',
			c == '-', c == '_', c == '.', c == '~', c == '/' && !encodeSlash:
			b.WriteByte(c)
		default:
			b.WriteByte('%')
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&15])
		}
	}
	return b.String()
}

func stringToSign(amzDate, scope, canonical string) string {
	h := sha256.Sum256([]byte(canonical))
	return algorithmV4 + "\n" + amzDate + "\n" + scope + "\n" + hex.EncodeToString(h[:])
}

func signingKey(secret, date, region string) []byte {
	k := hmacSum([]byte("AWS4"+secret), date)
	k = hmacSum(k, region)
	k = hmacSum(k, "s3")
	return hmacSum(k, "aws4_request")
}

func hmacSum(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}

func hmacHex(key []byte, data string) string { return hex.EncodeToString(hmacSum(key, data)) }

func equalSig(want, got string) bool {
	return subtle.ConstantTimeCompare([]byte(want), []byte(strings.ToLower(got))) == 1
}
