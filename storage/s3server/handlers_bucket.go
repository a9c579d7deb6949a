package s3server

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"strconv"
)

const maxListKeys = 1000

func (s *Server) listBuckets(w http.ResponseWriter) error {
	res := listAllMyBucketsResult{NS: s3NS, Owner: serverOwner}
	for _, b := range s.store.listBuckets() {
		res.Buckets = append(res.Buckets, bucketEntry{b.Name, xmlTime(b.Created)})
	}
	writeXML(w, http.StatusOK, res)
	return nil
}

func (s *Server) createBucket(w http.ResponseWriter, r *http.Request, auth *authContext, bucket string) error {
	// The body, if any, is a CreateBucketConfiguration naming a region;
	// one server serves one region, so it is read (to check its hash) and
	// otherwise ignored.
	if r.ContentLength != 0 {
		if _, err := readSmallBody(r, auth, 64<<10); err != nil {
			return err
		}
	}
	if err := s.store.createBucket(bucket); err != nil {
		return err
	}
	w.Header().Set("Location", "/"+bucket)
	w.WriteHeader(http.StatusOK)
	return nil
}

func (s *Server) bucketLocation(w http.ResponseWriter, bucket string) error {
	if _, err := s.store.bucket(bucket); err != nil {
		return err
	}
	writeXML(w, http.StatusOK, locationConstraint{NS: s3NS, Region: s.cfg.Region})
	return nil
}

// listParams reads prefix, delimiter, max-keys and encoding-type.
func listParams(q url.Values) (prefix, delim string, max int, encode bool, err error) {
	prefix, delim = q.Get("prefix"), q.Get("delimiter")
	max = maxListKeys
	if v := q.Get("max-keys"); v != "" {
		n, perr := strconv.Atoi(v)
		if perr != nil || n < 0 {
			return "", "", 0, false, errInvalidArgument.withMessage("max-keys must be a non-negative integer.")
		}
		max = min(n, maxListKeys)
	}
	switch q.Get("encoding-type") {
	case "":
	case "url":
		encode = true
	default:
		return "", "", 0, false, errInvalidArgument.withMessage("encoding-type must be url.")
	}
	return prefix, delim, max, encode, nil
}

// listEntries converts a listing page to XML entries, URL-encoding names
// when asked (keys may hold characters XML cannot carry).
func listEntries(res listResult, encode bool) ([]objectEntry, []commonPrefix) {
	enc := func(s string) string {
		if encode {
			return uriEncode(s, false)
		}
		return s
	}
	objs := make([]objectEntry, 0, len(res.Objects))
	for _, o := range res.Objects {
		objs = append(objs, objectEntry{Key: enc(o.Key), LastModified: xmlTime(o.Modified),
			ETag: `"` + o.ETag + `"`, Size: o.Size, StorageClass: "STANDARD"})
	}
	cps := make([]commonPrefix, 0, len(res.Prefixes))
	for _, p := range res.Prefixes {
		cps = append(cps, commonPrefix{enc(p)})
	}
	return objs, cps
}

func (s *Server) listObjectsV2(w http.ResponseWriter, r *http.Request, bucket string) error {
	q := r.URL.Query()
	prefix, delim, max, encode, err := listParams(q)
	if err != nil {
		return err
	}
	after := q.Get("start-after")
	token := q.Get("continuation-token")
	if token != "" {
		raw, derr := base64.RawURLEncoding.DecodeString(token)
		if derr != nil {
			return errInvalidArgument.withMessage("The continuation token provided is incorrect.")
		}
		after = string(raw)
	}
	var res listResult
	if max > 0 {
		if res, err = s.store.list(bucket, prefix, delim, after, max); err != nil {
			return err
		}
	} else if _, err := s.store.bucket(bucket); err != nil {
		return err
	}
	out := listBucketResultV2{NS: s3NS, Name: bucket, Prefix: prefix, Delimiter: delim, MaxKeys: max,
		IsTruncated: res.Truncated, ContinuationToken: token, StartAfter: q.Get("start-after")}
	out.Contents, out.CommonPrefixes = listEntries(res, encode)
	out.KeyCount = len(out.Contents) + len(out.CommonPrefixes)
	if res.Truncated {
		out.NextContinuationToken = base64.RawURLEncoding.EncodeToString([]byte(res.Next))
	}
	if encode {
		out.EncodingType = "url"
		out.Prefix, out.Delimiter, out.StartAfter = uriEncode(prefix, false), uriEncode(delim, false), uriEncode(out.StartAfter, false)
	}
	writeXML(w, http.StatusOK, out)
	return nil
}

func (s *Server) listObjectsV1(w http.ResponseWriter, r *http.Request, bucket string) error {
	q := r.URL.Query()
	prefix, delim, max, encode, err := listParams(q)
	if err != nil {
		return err
	}
	marker := q.Get("marker")
	var res listResult
	if max > 0 {
		if res, err = s.store.list(bucket, prefix, delim, marker, max); err != nil {
			return err
		}
	} else if _, err := s.store.bucket(bucket); err != nil {
		return err
	}
	out := listBucketResultV1{NS: s3NS, Name: bucket, Prefix: prefix, Marker: marker, Delimiter: delim,
		MaxKeys: max, IsTruncated: res.Truncated}
	out.Contents, out.CommonPrefixes = listEntries(res, encode)
	if res.Truncated {
		out.NextMarker = res.Next
	}
	if encode {
		out.EncodingType = "url"
		out.Prefix, out.Marker, out.NextMarker = uriEncode(prefix, false), uriEncode(marker, false), uriEncode(out.NextMarker, false)
		out.Delimiter = uriEncode(delim, false)
	}
	writeXML(w, http.StatusOK, out)
	return nil
}
