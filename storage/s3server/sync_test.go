package s3server

import (
	"bytes"
	"testing"
)

// TestDurableMode runs a put/get round trip with fsync on (the default),
// which the other tests turn off for speed.
func TestDurableMode(t *testing.T) {
	srv, err := New(Config{Dir: t.TempDir(), AccessKey: testAK, SecretKey: testSK})
	if err != nil {
		t.Fatal(err)
	}
	if srv.store.noSync {
		t.Fatal("fsync is off by default")
	}
	if err := srv.store.createBucket("dur"); err != nil {
		t.Fatal(err)
	}
	data := randBytes(70, 100_000)
	meta, err := srv.store.putObject("dur", "k", bytes.NewReader(data), bodyCheck{size: int64(len(data)), max: maxPutSize}, objMeta{})
	if err != nil || meta.Size != int64(len(data)) {
		t.Fatalf("put: %+v, %v", meta, err)
	}
	f, got, err := srv.store.openObject("dur", "k")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, got.Size)
	f.ReadAt(buf, 0)
	if !bytes.Equal(buf, data) || got.ETag != meta.ETag {
		t.Fatal("durable round trip differs")
	}
}
