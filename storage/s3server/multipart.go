package s3server

import (
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"
)

// upload is the record of a multipart upload in progress.
type upload struct {
	ID          string            `json:"id"`
	Bucket      string            `json:"bucket"`
	Key         string            `json:"key"`
	ContentType string            `json:"content_type,omitempty"`
	UserMeta    map[string]string `json:"user_meta,omitempty"`
	Initiated   time.Time         `json:"initiated"`
}

var uploadIDRE = regexp.MustCompile(`^[0-9a-f]{32}$`)

func (s *store) uploadDir(id string) string { return filepath.Join(s.root, "uploads", id) }

func partName(n int) string { return fmt.Sprintf("part-%05d", n) }

// createUpload starts a multipart upload and returns its ID.
func (s *store) createUpload(bucketName, key string, meta objMeta) (string, error) {
	if _, err := s.bucket(bucketName); err != nil {
		return "", err
	}
	u := upload{ID: randomID(), Bucket: bucketName, Key: key, ContentType: meta.ContentType,
		UserMeta: meta.UserMeta, Initiated: time.Now().UTC()}
	dir := s.uploadDir(u.ID)
	if err := os.Mkdir(dir, 0o755); err != nil {
		return "", err
	}
	raw, _ := json.Marshal(u)
	f, err := createTemp(dir)
	if err == nil {
		_, err = f.Write(raw)
		if err == nil {
			err = syncClose(f, s.noSync)
		} else {
			f.Close()
		}
		if err == nil {
			err = os.Rename(f.Name(), filepath.Join(dir, "upload.json"))
		}
	}
	if err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	return u.ID, nil
}

// getUpload loads an upload and checks it belongs to bucket/key.
func (s *store) getUpload(bucketName, key, id string) (upload, error) {
	var u upload
	if !uploadIDRE.MatchString(id) {
		return u, errNoSuchUpload
	}
	raw, err := os.ReadFile(filepath.Join(s.uploadDir(id), "upload.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return u, errNoSuchUpload
	}
	if err != nil {
		return u, err
	}
	if err := json.Unmarshal(raw, &u); err != nil {
		return u, err
	}
	if u.Bucket != bucketName || u.Key != key {
		return u, errNoSuchUpload
	}
	return u, nil
}

// putPart stores one part; a part uploaded again replaces the earlier one.
func (s *store) putPart(bucketName, key, id string, n int, body io.Reader, chk bodyCheck) (objMeta, error) {
	var meta objMeta
	if n < 1 || n > maxPartNumber {
		return meta, errInvalidPartNumber
	}
	if _, err := s.getUpload(bucketName, key, id); err != nil {
		return meta, err
	}
	dir := s.uploadDir(id)
	f, size, sum, err := writeTemp(dir, body, chk)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return meta, errNoSuchUpload // aborted while we wrote
		}
		return meta, err
	}
	meta = objMeta{Key: key, Size: size, ETag: hex.EncodeToString(sum), Modified: time.Now().UTC()}
	if err := finishObject(f, meta, s.noSync); err != nil {
		os.Remove(f.Name())
		return meta, err
	}
	s.uploadMu.Lock()
	defer s.uploadMu.Unlock()
	if err := os.Rename(f.Name(), filepath.Join(dir, partName(n))); err != nil {
		os.Remove(f.Name())
		if errors.Is(err, fs.ErrNotExist) {
			return meta, errNoSuchUpload
		}
		return meta, err
	}
	return meta, nil
}

// completedPart is one entry of a CompleteMultipartUpload request.
type completedPart struct {
	PartNumber int    `xml:"PartNumber"`
	ETag       string `xml:"ETag"`
}

// completeUpload concatenates the listed parts into the object. Parts must
// be listed in ascending order, exist with the given ETags, and all but the
// last must be at least 5 MiB. Parts not listed are discarded.
func (s *store) completeUpload(bucketName, key, id string, parts []completedPart) (objMeta, error) {
	var meta objMeta
	b, err := s.bucket(bucketName)
	if err != nil {
		return meta, err
	}
	s.uploadMu.Lock()
	defer s.uploadMu.Unlock()
	u, err := s.getUpload(bucketName, key, id)
	if err != nil {
		return meta, err
	}
	if len(parts) == 0 {
		return meta, errMalformedXML.withMessage("CompleteMultipartUpload lists no parts.")
	}
	for i, p := range parts {
		if i > 0 && p.PartNumber <= parts[i-1].PartNumber {
			return meta, errInvalidPartOrder
		}
	}
	dir := s.uploadDir(id)
	files := make([]*os.File, 0, len(parts))
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	var sizes []int64
	md := md5.New()
	var partMD5s []string
	var total int64
	for i, p := range parts {
		if p.PartNumber < 1 || p.PartNumber > maxPartNumber {
			return meta, errInvalidPartNumber
		}
		f, pm, err := openObjectFile(filepath.Join(dir, partName(p.PartNumber)))
		if errors.Is(err, fs.ErrNotExist) {
			return meta, errInvalidPart.withMessage(fmt.Sprintf("Part %d was not uploaded.", p.PartNumber))
		}
		if err != nil {
			return meta, err
		}
		files = append(files, f)
		if strings.Trim(p.ETag, `"`) != pm.ETag {
			return meta, errInvalidPart.withMessage(fmt.Sprintf("Part %d has ETag %q, not %q.", p.PartNumber, pm.ETag, p.ETag))
		}
		if i < len(parts)-1 && pm.Size < minPartSize {
			return meta, errEntityTooSmall.withMessage(fmt.Sprintf("Part %d is %d bytes; all parts but the last must be at least 5 MiB.", p.PartNumber, pm.Size))
		}
		sum, _ := hex.DecodeString(pm.ETag)
		md.Write(sum)
		partMD5s = append(partMD5s, pm.ETag)
		sizes = append(sizes, pm.Size)
		total += pm.Size
	}
	if total > maxObjectSize {
		return meta, errEntityTooLarge
	}
	out, err := createTemp(s.tmpDir())
	if err != nil {
		return meta, err
	}
	for i, f := range files {
		// A LimitedReader over an *os.File lets the kernel copy the range.
		if _, err := io.Copy(out, &io.LimitedReader{R: f, N: sizes[i]}); err != nil {
			out.Close()
			os.Remove(out.Name())
			return meta, err
		}
	}
	meta = objMeta{Key: key, Size: total, ETag: fmt.Sprintf("%s-%d", hex.EncodeToString(md.Sum(nil)), len(parts)),
		ContentType: u.ContentType, UserMeta: u.UserMeta, Modified: time.Now().UTC(), PartMD5s: partMD5s}
	if err := finishObject(out, meta, s.noSync); err != nil {
		os.Remove(out.Name())
		return meta, err
	}
	if err := s.commit(b, out.Name(), meta); err != nil {
		return meta, err
	}
	return meta, s.removeUpload(id)
}

// abortUpload discards an upload and its parts.
func (s *store) abortUpload(bucketName, key, id string) error {
	s.uploadMu.Lock()
	defer s.uploadMu.Unlock()
	if _, err := s.getUpload(bucketName, key, id); err != nil {
		return err
	}
	return s.removeUpload(id)
}

// removeUpload moves the upload directory aside, then deletes it, so a
// half-deleted upload is never seen.
func (s *store) removeUpload(id string) error {
	trash := filepath.Join(s.tmpDir(), id+".upload")
	if err := os.Rename(s.uploadDir(id), trash); err != nil {
		return err
	}
	return os.RemoveAll(trash)
}

// partInfo describes one uploaded part.
type partInfo struct {
	Number   int
	Size     int64
	ETag     string
	Modified time.Time
}

// listParts returns the parts of an upload in part-number order.
func (s *store) listParts(bucketName, key, id string) ([]partInfo, error) {
	if _, err := s.getUpload(bucketName, key, id); err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(s.uploadDir(id))
	if err != nil {
		return nil, err
	}
	var out []partInfo
	for _, e := range entries {
		var n int
		if _, err := fmt.Sscanf(e.Name(), "part-%05d", &n); err != nil || e.Name() != partName(n) {
			continue
		}
		f, pm, err := openObjectFile(filepath.Join(s.uploadDir(id), e.Name()))
		if err != nil {
			continue // replaced or aborted concurrently
		}
		f.Close()
		out = append(out, partInfo{Number: n, Size: pm.Size, ETag: pm.ETag, Modified: pm.Modified})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Number < out[j].Number })
	return out, nil
}

// expireUploads discards the uploads initiated before cutoff and returns
// how many it removed.
func (s *store) expireUploads(cutoff time.Time) (int, error) {
	entries, err := os.ReadDir(filepath.Join(s.root, "uploads"))
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range entries {
		if !uploadIDRE.MatchString(e.Name()) {
			continue
		}
		raw, err := os.ReadFile(filepath.Join(s.uploadDir(e.Name()), "upload.json"))
		var u upload
		switch {
		case err == nil && json.Unmarshal(raw, &u) == nil:
		case errors.Is(err, fs.ErrNotExist):
			// Creation interrupted before the record was written: judge by age.
			info, ierr := e.Info()
			if ierr != nil {
				continue
			}
			u.Initiated = info.ModTime()
		default:
			continue
		}
		if !u.Initiated.Before(cutoff) {
			continue
		}
		s.uploadMu.Lock()
		err = s.removeUpload(e.Name())
		s.uploadMu.Unlock()
		if err == nil {
			n++
		} else if !errors.Is(err, fs.ErrNotExist) {
			return n, err
		}
	}
	return n, nil
}

// listUploads returns the unfinished uploads of bucket whose key starts
// with prefix, ordered by key, initiation time and ID.
func (s *store) listUploads(bucketName, prefix string) ([]upload, error) {
	if _, err := s.bucket(bucketName); err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(filepath.Join(s.root, "uploads"))
	if err != nil {
		return nil, err
	}
	var out []upload
	for _, e := range entries {
		raw, err := os.ReadFile(filepath.Join(s.uploadDir(e.Name()), "upload.json"))
		var u upload
		if err != nil || json.Unmarshal(raw, &u) != nil {
			continue
		}
		if u.Bucket == bucketName && strings.HasPrefix(u.Key, prefix) {
			out = append(out, u)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Key != out[j].Key {
			return out[i].Key < out[j].Key
		}
		if !out[i].Initiated.Equal(out[j].Initiated) {
			return out[i].Initiated.Before(out[j].Initiated)
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}
