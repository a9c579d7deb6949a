package dataset

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"strings"
	"time"

	"github.com/dsae/dsae/storage/datafile"
	"github.com/dsae/dsae/storage/order"
)

// ManifestFormat identifies the manifest schema; readers reject others.
const ManifestFormat = "dsae-dataset/1"

// DatasetPrefix is the key prefix under which datasets live.
const DatasetPrefix = "datasets/"

// maxManifestBytes bounds the manifest a reader accepts (it holds one CRC
// per chunk: a billion rows in 256-row chunks is about 60 MB of JSON).
const maxManifestBytes = 256 << 20

// Manifest describes a published dataset. It is stored as JSON at
// datasets/<name>/manifest.json and written last: its presence publishes
// the dataset. Shards are C-order little-endian float32 .npy files of
// shape (rows, d); labels, if present, are int32 .npy files of shape
// (rows,), one per shard.
type Manifest struct {
	Format    string      `json:"format"`
	Name      string      `json:"name"`
	D         int         `json:"d"`
	Dtype     string      `json:"dtype"` // always "float32"
	Rows      int64       `json:"rows"`
	ChunkRows int         `json:"chunk_rows"`
	Shards    []ShardInfo `json:"shards"`
	HasLabels bool        `json:"has_labels"`
	Source    SourceInfo  `json:"source"`
	Mean      []float64   `json:"mean,omitempty"` // per feature, len d
	Std       []float64   `json:"std,omitempty"`  // per feature (population), len d
	Created   time.Time   `json:"created"`
}

// ShardInfo describes one shard object and, if the dataset has labels, its
// labels object.
type ShardInfo struct {
	Key         string   `json:"key"`
	Rows        int64    `json:"rows"`
	Bytes       int64    `json:"bytes"`        // object size
	DataOffset  int64    `json:"data_offset"`  // bytes of .npy header before row 0
	SHA256      string   `json:"sha256"`       // of the whole object, hex
	ChunkCRC32C []uint32 `json:"chunk_crc32c"` // CRC32C (Castagnoli) of each chunk's row bytes

	LabelsKey         string   `json:"labels_key,omitempty"`
	LabelsBytes       int64    `json:"labels_bytes,omitempty"`
	LabelsDataOffset  int64    `json:"labels_data_offset,omitempty"`
	LabelsSHA256      string   `json:"labels_sha256,omitempty"`
	LabelsChunkCRC32C []uint32 `json:"labels_chunk_crc32c,omitempty"`
}

// SourceInfo records where a dataset came from.
type SourceInfo struct {
	Format string   `json:"format"` // npy, csv, idx or builtin
	Files  []string `json:"files"`
}

// Layout returns the dataset's layout for order.NewEpochOrder.
func (m *Manifest) Layout() order.Layout {
	l := order.Layout{ChunkRows: m.ChunkRows, ShardRows: make([]int64, len(m.Shards))}
	for i, s := range m.Shards {
		l.ShardRows[i] = s.Rows
	}
	return l
}

// DataBytes is the total size of the shard objects (labels excluded).
func (m *Manifest) DataBytes() int64 {
	var n int64
	for _, s := range m.Shards {
		n += s.Bytes
	}
	return n
}

// manifestKey returns the manifest key of dataset name.
func manifestKey(name string) string { return DatasetPrefix + name + "/manifest.json" }

// datasetDir returns the key prefix of dataset name, ending in '/'.
func datasetDir(name string) string { return DatasetPrefix + name + "/" }

var datasetNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,99}$`)

// ValidateDatasetName checks that name is 1–100 characters of lower-case
// letters, digits, '.', '_' and '-', starting with a letter or digit, and
// is not "." or "..". Errors wrap datafile.ErrBadInput.
func ValidateDatasetName(name string) error {
	if !datasetNameRE.MatchString(name) || strings.Contains(name, "..") {
		return datafile.BadInput("dataset name %q invalid: want 1-100 of a-z 0-9 . _ - starting with a letter or digit, no '..'", name)
	}
	return nil
}

// ParseManifest decodes and validates a manifest read from key. Errors
// wrap ErrCorrupt and name the key and the offending field.
func ParseManifest(key string, data []byte) (*Manifest, error) {
	if len(data) > maxManifestBytes {
		return nil, fmt.Errorf("%w: manifest %s: %d bytes exceeds %d", ErrCorrupt, key, len(data), maxManifestBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%w: manifest %s: %v", ErrCorrupt, key, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: manifest %s: trailing data after the JSON object", ErrCorrupt, key)
	}
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("%w: manifest %s: %v", ErrCorrupt, key, err)
	}
	return &m, nil
}

// Validate checks the manifest's internal consistency: format, name, d,
// dtype, chunk size, every shard's key, rows, size, checksums and chunk
// CRC count, the row total, labels, and mean/std.
func (m *Manifest) Validate() error {
	if m.Format != ManifestFormat {
		return fmt.Errorf("format %q, want %q", m.Format, ManifestFormat)
	}
	if err := ValidateDatasetName(m.Name); err != nil {
		return errors.New(err.Error())
	}
	if m.D < 1 || m.D > datafile.MaxDim {
		return fmt.Errorf("d %d outside [1, %d]", m.D, datafile.MaxDim)
	}
	if m.Dtype != "float32" {
		return fmt.Errorf("dtype %q, want float32", m.Dtype)
	}
	if m.ChunkRows < 1 {
		return fmt.Errorf("chunk_rows %d, want ≥ 1", m.ChunkRows)
	}
	if len(m.Shards) == 0 {
		return errors.New("no shards")
	}
	prefix := datasetDir(m.Name)
	keys := map[string]bool{}
	var total int64
	rowBytes := int64(m.D) * 4
	for i, s := range m.Shards {
		if s.Rows < 1 || s.Rows > math.MaxInt64/rowBytes {
			return fmt.Errorf("shard %d: rows %d out of range", i, s.Rows)
		}
		if total > math.MaxInt64-s.Rows {
			return fmt.Errorf("shard %d: row total overflows", i)
		}
		total += s.Rows
		chunks := (s.Rows + int64(m.ChunkRows) - 1) / int64(m.ChunkRows)
		if err := checkObject(prefix, keys, s.Key, s.Bytes, s.DataOffset, s.SHA256, s.ChunkCRC32C, s.Rows*rowBytes, chunks); err != nil {
			return fmt.Errorf("shard %d: %v", i, err)
		}
		if m.HasLabels {
			if err := checkObject(prefix, keys, s.LabelsKey, s.LabelsBytes, s.LabelsDataOffset, s.LabelsSHA256, s.LabelsChunkCRC32C, s.Rows*4, chunks); err != nil {
				return fmt.Errorf("shard %d labels: %v", i, err)
			}
		} else if s.LabelsKey != "" || s.LabelsChunkCRC32C != nil {
			return fmt.Errorf("shard %d: labels given but has_labels is false", i)
		}
	}
	if total != m.Rows {
		return fmt.Errorf("rows %d, but shards hold %d", m.Rows, total)
	}
	for _, f := range []struct {
		name string
		v    []float64
	}{{"mean", m.Mean}, {"std", m.Std}} {
		name, v := f.name, f.v
		if v == nil {
			continue
		}
		if len(v) != m.D {
			return fmt.Errorf("%s has %d values, want d=%d", name, len(v), m.D)
		}
		for j, x := range v {
			if math.IsNaN(x) || math.IsInf(x, 0) || (name == "std" && x < 0) {
				return fmt.Errorf("%s[%d] = %v invalid", name, j, x)
			}
		}
	}
	return nil
}

// checkObject validates one shard or labels object entry.
func checkObject(prefix string, keys map[string]bool, key string, size, off int64, sum string, crcs []uint32, dataBytes, chunks int64) error {
	if !strings.HasPrefix(key, prefix) || len(key) == len(prefix) || strings.Contains(key[len(prefix):], "/") {
		return fmt.Errorf("key %q not directly under %s", key, prefix)
	}
	if keys[key] {
		return fmt.Errorf("key %q listed twice", key)
	}
	keys[key] = true
	if off < 10 || off > datafile.MaxNPYHeaderLen+12 {
		return fmt.Errorf("data_offset %d out of range", off)
	}
	if size != off+dataBytes {
		return fmt.Errorf("bytes %d, want data_offset %d + %d data bytes", size, off, dataBytes)
	}
	if b, err := hex.DecodeString(sum); err != nil || len(b) != 32 {
		return fmt.Errorf("sha256 %q is not 64 hex digits", sum)
	}
	if int64(len(crcs)) != chunks {
		return fmt.Errorf("%d chunk CRCs, want %d", len(crcs), chunks)
	}
	return nil
}
