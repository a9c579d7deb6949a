// Package s3server is a small S3-compatible object server that keeps its
// objects in a local directory. dsae runs it for local use (`dsae s3 serve`,
// `dsae demo`) so that nothing else has to be installed; in production any
// S3-compatible store takes its place.
//
// It implements the part of the S3 REST API that dsae and ordinary S3
// clients use: ListBuckets, CreateBucket, HeadBucket, DeleteBucket,
// GetBucketLocation, PutObject, GetObject (with Range and If-Match),
// HeadObject, DeleteObject, DeleteObjects, ListObjects (V1 and V2 with prefix,
// delimiter, max-keys and pagination) and multipart uploads (create, upload
// part, complete with ETag checks, abort, list parts, list uploads).
// Anything else answers 501 NotImplemented.
//
// Buckets are addressed path-style (http://host/bucket/key). Every request
// must carry an AWS Signature Version 4 (Authorization header or presigned
// query) made with the configured key pair. Payloads may be a signed SHA-256, UNSIGNED-PAYLOAD, or
// aws-chunked streaming (STREAMING-AWS4-HMAC-SHA256-PAYLOAD, with or without
// a signed trailer, and STREAMING-UNSIGNED-PAYLOAD-TRAILER); chunk signatures
// are verified as the body streams, so a tampered chunk fails the upload and
// nothing is stored.
//
// Objects live on disk, one file per object (data followed by a small
// metadata trailer), written to a temporary file and renamed into place, so a
// reader sees either the old or the new object, and a crash never leaves a
// partial one. Multipart parts are files too; memory stays bounded whatever
// the object size. The directory survives restarts; multipart uploads left
// unfinished longer than Config.UploadExpiry are discarded.
//
// With Config.Registerer set, the server exports Prometheus metrics:
// requests by S3 operation and status, latency, bytes in and out.
//
// Running one:
//
//	srv, err := s3server.New(s3server.Config{Dir: dir, AccessKey: ak, SecretKey: sk})
//	if err != nil { ... }
//	ln, _ := net.Listen("tcp", "127.0.0.1:9000")
//	err = srv.Serve(ctx, ln) // returns after ctx is cancelled and requests drain
package s3server
