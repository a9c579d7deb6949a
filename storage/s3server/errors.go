package s3server

import (
	"encoding/xml"
	"errors"
	"net/http"
)

// Errors returned by New and Serve.
var (
	// ErrConfig reports an invalid Config (missing directory or credentials).
	ErrConfig = errors.New("s3server: invalid config")
)

// apiError is an S3 error response: the Code clients switch on and the
// HTTP status that carries it.
type apiError struct {
	Code    string
	Status  int
	Message string
}

func (e *apiError) Error() string { return e.Code + ": " + e.Message }

// withMessage returns a copy of e with a more specific message.
func (e *apiError) withMessage(msg string) *apiError {
	c := *e
	c.Message = msg
	return &c
}

// The S3 error codes this server answers with.
var (
	errAccessDenied          = &apiError{"AccessDenied", http.StatusForbidden, "Access Denied."}
	errInvalidAccessKeyID    = &apiError{"InvalidAccessKeyId", http.StatusForbidden, "The access key ID you provided does not exist in our records."}
	errSignatureDoesNotMatch = &apiError{"SignatureDoesNotMatch", http.StatusForbidden, "The request signature we calculated does not match the signature you provided. Check your key and signing method."}
	errRequestTimeTooSkewed  = &apiError{"RequestTimeTooSkewed", http.StatusForbidden, "The difference between the request time and the server's time is too large."}
	errExpiredToken          = &apiError{"AccessDenied", http.StatusForbidden, "Request has expired."}
	errAuthHeaderMalformed   = &apiError{"AuthorizationHeaderMalformed", http.StatusBadRequest, "The authorization header is malformed."}
	errAuthQueryMalformed    = &apiError{"AuthorizationQueryParametersError", http.StatusBadRequest, "The presigned query parameters are malformed."}
	errUnsupportedSignature  = &apiError{"InvalidRequest", http.StatusBadRequest, "Only AWS Signature Version 4 (AWS4-HMAC-SHA256) is supported."}
	errNoSuchBucket          = &apiError{"NoSuchBucket", http.StatusNotFound, "The specified bucket does not exist."}
	errNoSuchKey             = &apiError{"NoSuchKey", http.StatusNotFound, "The specified key does not exist."}
	errNoSuchUpload          = &apiError{"NoSuchUpload", http.StatusNotFound, "The specified multipart upload does not exist."}
	errBucketAlreadyOwned    = &apiError{"BucketAlreadyOwnedByYou", http.StatusConflict, "Your previous request to create the named bucket succeeded and you already own it."}
	errBucketNotEmpty        = &apiError{"BucketNotEmpty", http.StatusConflict, "The bucket you tried to delete is not empty."}
	errInvalidBucketName     = &apiError{"InvalidBucketName", http.StatusBadRequest, "The specified bucket is not valid."}
	errKeyTooLong            = &apiError{"KeyTooLongError", http.StatusBadRequest, "Your key is too long."}
	errInvalidObjectName     = &apiError{"InvalidArgument", http.StatusBadRequest, "Object key must be valid UTF-8 and not empty."}
	errInvalidRange          = &apiError{"InvalidRange", http.StatusRequestedRangeNotSatisfiable, "The requested range is not satisfiable."}
	errInvalidPart           = &apiError{"InvalidPart", http.StatusBadRequest, "One or more of the specified parts could not be found or its entity tag does not match."}
	errInvalidPartOrder      = &apiError{"InvalidPartOrder", http.StatusBadRequest, "The list of parts was not in ascending order."}
	errInvalidPartNumber     = &apiError{"InvalidArgument", http.StatusBadRequest, "Part number must be an integer between 1 and 10000, inclusive."}
	errEntityTooSmall        = &apiError{"EntityTooSmall", http.StatusBadRequest, "Your proposed upload is smaller than the minimum allowed object size."}
	errEntityTooLarge        = &apiError{"EntityTooLarge", http.StatusBadRequest, "Your proposed upload exceeds the maximum allowed object size."}
	errMalformedXML          = &apiError{"MalformedXML", http.StatusBadRequest, "The XML you provided was not well-formed or did not validate against our published schema."}
	errBadDigest             = &apiError{"BadDigest", http.StatusBadRequest, "The Content-MD5 you specified did not match what we received."}
	errInvalidDigest         = &apiError{"InvalidDigest", http.StatusBadRequest, "The Content-MD5 you specified is not valid."}
	errContentSHA256Mismatch = &apiError{"XAmzContentSHA256Mismatch", http.StatusBadRequest, "The provided 'x-amz-content-sha256' header does not match what was computed."}
	errChecksumMismatch      = &apiError{"BadDigest", http.StatusBadRequest, "The trailing checksum does not match the received data."}
	errIncompleteBody        = &apiError{"IncompleteBody", http.StatusBadRequest, "You did not provide the number of bytes specified by the Content-Length HTTP header."}
	errMalformedChunk        = &apiError{"InvalidRequest", http.StatusBadRequest, "The aws-chunked payload is malformed."}
	errMissingContentLength  = &apiError{"MissingContentLength", http.StatusLengthRequired, "You must provide the Content-Length HTTP header."}
	errInvalidArgument       = &apiError{"InvalidArgument", http.StatusBadRequest, "Invalid argument."}
	errPreconditionFailed    = &apiError{"PreconditionFailed", http.StatusPreconditionFailed, "At least one of the preconditions you specified did not hold."}
	errNotModified           = &apiError{"NotModified", http.StatusNotModified, "Not Modified."}
	errMethodNotAllowed      = &apiError{"MethodNotAllowed", http.StatusMethodNotAllowed, "The specified method is not allowed against this resource."}
	errNotImplemented        = &apiError{"NotImplemented", http.StatusNotImplemented, "A header or query you provided implies functionality that is not implemented."}
	errInternal              = &apiError{"InternalError", http.StatusInternalServerError, "We encountered an internal error. Please try again."}
)

// errorResponse is the XML body of an S3 error.
type errorResponse struct {
	XMLName   xml.Name `xml:"Error"`
	Code      string   `xml:"Code"`
	Message   string   `xml:"Message"`
	Resource  string   `xml:"Resource,omitempty"`
	RequestID string   `xml:"RequestId"`
}

// toAPIError maps any error to the S3 error to send; unknown errors become
// InternalError.
func toAPIError(err error) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	return errInternal
}
