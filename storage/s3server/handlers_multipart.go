package s3server

import (
	"encoding/xml"
	"net/http"
	"strconv"
)

func (s *Server) createUpload(w http.ResponseWriter, r *http.Request, bucket, key string) error {
	meta := objMeta{ContentType: r.Header.Get("Content-Type"), UserMeta: userMeta(r.Header)}
	id, err := s.store.createUpload(bucket, key, meta)
	if err != nil {
		return err
	}
	writeXML(w, http.StatusOK, initiateMultipartUploadResult{NS: s3NS, Bucket: bucket, Key: key, UploadID: id})
	return nil
}

func (s *Server) uploadPart(w http.ResponseWriter, r *http.Request, auth *authContext, bucket, key string) error {
	q := r.URL.Query()
	n, err := strconv.Atoi(q.Get("partNumber"))
	if err != nil || n < 1 || n > maxPartNumber {
		return errInvalidPartNumber
	}
	body, chk, err := payload(r, auth, maxPutSize)
	if err != nil {
		return err
	}
	meta, err := s.store.putPart(bucket, key, q.Get("uploadId"), n, body, chk)
	if err != nil {
		return bodyError(err)
	}
	w.Header().Set("ETag", `"`+meta.ETag+`"`)
	w.WriteHeader(http.StatusOK)
	return nil
}

func (s *Server) completeUpload(w http.ResponseWriter, r *http.Request, auth *authContext, bucket, key string) error {
	body, err := readSmallBody(r, auth, 4<<20)
	if err != nil {
		return err
	}
	var req completeMultipartUpload
	if err := xml.Unmarshal(body, &req); err != nil {
		return errMalformedXML
	}
	meta, err := s.store.completeUpload(bucket, key, r.URL.Query().Get("uploadId"), req.Parts)
	if err != nil {
		return err
	}
	writeXML(w, http.StatusOK, completeMultipartUploadResult{NS: s3NS, Location: "/" + bucket + "/" + key,
		Bucket: bucket, Key: key, ETag: `"` + meta.ETag + `"`})
	return nil
}

func (s *Server) listParts(w http.ResponseWriter, r *http.Request, bucket, key string) error {
	q := r.URL.Query()
	id := q.Get("uploadId")
	parts, err := s.store.listParts(bucket, key, id)
	if err != nil {
		return err
	}
	marker, _ := strconv.Atoi(q.Get("part-number-marker"))
	maxParts := 1000
	if v, err := strconv.Atoi(q.Get("max-parts")); err == nil && v > 0 && v < maxParts {
		maxParts = v
	}
	res := listPartsResult{NS: s3NS, Bucket: bucket, Key: key, UploadID: id, PartNumberMarker: marker, MaxParts: maxParts}
	for _, p := range parts {
		if p.Number <= marker {
			continue
		}
		if len(res.Parts) == maxParts {
			res.IsTruncated = true
			break
		}
		res.Parts = append(res.Parts, partEntry{p.Number, xmlTime(p.Modified), `"` + p.ETag + `"`, p.Size})
		res.NextPartNumberMarker = p.Number
	}
	writeXML(w, http.StatusOK, res)
	return nil
}

// listUploads answers ListMultipartUploads. Uploads after key-marker /
// upload-id-marker are returned, up to max-uploads (1000).
func (s *Server) listUploads(w http.ResponseWriter, r *http.Request, bucket string) error {
	q := r.URL.Query()
	prefix, keyMarker, idMarker := q.Get("prefix"), q.Get("key-marker"), q.Get("upload-id-marker")
	maxUploads := 1000
	if v, err := strconv.Atoi(q.Get("max-uploads")); err == nil && v >= 0 && v < maxUploads {
		maxUploads = v
	}
	ups, err := s.store.listUploads(bucket, prefix)
	if err != nil {
		return err
	}
	res := listMultipartUploadsResult{NS: s3NS, Bucket: bucket, KeyMarker: keyMarker, UploadIDMarker: idMarker,
		Prefix: prefix, MaxUploads: maxUploads}
	// Start after key-marker, or after the upload named by both markers.
	start := 0
	if keyMarker != "" {
		start = len(ups)
		for i, u := range ups {
			if u.Key > keyMarker {
				start = i
				break
			}
		}
		for i, u := range ups {
			if idMarker != "" && u.Key == keyMarker && u.ID == idMarker {
				start = i + 1
				break
			}
		}
	}
	for _, u := range ups[start:] {
		if len(res.Uploads) == maxUploads {
			res.IsTruncated = true
			break
		}
		res.Uploads = append(res.Uploads, uploadEntry{Key: u.Key, UploadID: u.ID, Initiator: serverOwner,
			Owner: serverOwner, StorageClass: "STANDARD", Initiated: xmlTime(u.Initiated)})
		res.NextKeyMarker, res.NextUploadIDMarker = u.Key, u.ID
	}
	writeXML(w, http.StatusOK, res)
	return nil
}
