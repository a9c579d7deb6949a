package s3server

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/minio/minio-go/v7"
)

const benchObject = 64 << 20

// BenchmarkServerPut uploads 64 MiB objects with minio-go over loopback:
// payload=streaming is what minio-go sends on plain HTTP (aws-chunked,
// every 64 KiB chunk signed and verified); payload=unsigned skips the
// chunk signatures; fsync=true is the server's durable default.
func BenchmarkServerPut(b *testing.B) {
	for _, tc := range []struct {
		mode string
		sync bool
	}{{"streaming", false}, {"unsigned", false}, {"streaming", true}} {
		mode := tc.mode
		b.Run(fmt.Sprintf("size=64MiB,payload=%s,fsync=%v", mode, tc.sync), func(b *testing.B) {
			ts := startServer(b, "")
			ts.store.noSync = !tc.sync
			c := ts.core(b, testSK)
			ctx := context.Background()
			c.MakeBucket(ctx, "bench", minio.MakeBucketOptions{})
			data := randBytes(1, benchObject)
			opts := minio.PutObjectOptions{DisableContentSha256: mode == "unsigned", DisableMultipart: true}
			b.SetBytes(benchObject)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := c.PutObject(ctx, "bench", "obj", bytes.NewReader(data), benchObject, "", "", opts); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(benchObject)*float64(b.N)/b.Elapsed().Seconds()/1e6, "MB/s")
		})
	}
}

// BenchmarkServerGet downloads a 64 MiB object with minio-go over loopback.
func BenchmarkServerGet(b *testing.B) {
	b.Run("size=64MiB", func(b *testing.B) {
		ts := startServer(b, "")
		c := ts.core(b, testSK)
		ctx := context.Background()
		c.MakeBucket(ctx, "bench", minio.MakeBucketOptions{})
		data := randBytes(2, benchObject)
		if _, err := c.PutObject(ctx, "bench", "obj", bytes.NewReader(data), benchObject, "", "", minio.PutObjectOptions{}); err != nil {
			b.Fatal(err)
		}
		b.SetBytes(benchObject)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			obj, _, _, err := c.GetObject(ctx, "bench", "obj", minio.GetObjectOptions{})
			if err != nil {
				b.Fatal(err)
			}
			if n, err := io.Copy(io.Discard, obj); err != nil || n != benchObject {
				b.Fatalf("read %d, %v", n, err)
			}
			obj.Close()
		}
		b.ReportMetric(float64(benchObject)*float64(b.N)/b.Elapsed().Seconds()/1e6, "MB/s")
	})
}

// BenchmarkServerMultipart uploads 256 MiB through minio-go's multipart
// path (16 MiB parts, streamed from a plain reader) and completes it.
func BenchmarkServerMultipart(b *testing.B) {
	const size = 256 << 20
	b.Run("size=256MiB,part=16MiB", func(b *testing.B) {
		ts := startServer(b, "")
		c := ts.core(b, testSK)
		ctx := context.Background()
		c.MakeBucket(ctx, "bench", minio.MakeBucketOptions{})
		data := randBytes(3, size)
		b.SetBytes(size)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			r := struct{ io.Reader }{bytes.NewReader(data)} // hide ReaderAt: sequential parts
			if _, err := c.PutObject(ctx, "bench", "big", r, size, "", "", minio.PutObjectOptions{PartSize: 16 << 20}); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(size)*float64(b.N)/b.Elapsed().Seconds()/1e6, "MB/s")
	})
}

// BenchmarkReferenceHTTP is the yardstick for the server benchmarks: a bare
// net/http handler that writes a PUT body to a file (temp + rename) and
// serves GETs from a file, on the same loopback, with Go's http client and
// no S3 logic (no signing, hashing or XML).
func BenchmarkReferenceHTTP(b *testing.B) {
	dir := b.TempDir()
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path := filepath.Join(dir, "obj")
		switch r.Method {
		case http.MethodPut:
			f, err := os.CreateTemp(dir, "tmp")
			if err != nil {
				http.Error(w, err.Error(), 500)
				return
			}
			io.Copy(f, r.Body)
			f.Close()
			os.Rename(f.Name(), path)
		case http.MethodGet:
			f, err := os.Open(path)
			if err != nil {
				http.Error(w, err.Error(), 404)
				return
			}
			defer f.Close()
			fi, _ := f.Stat()
			w.Header().Set("Content-Length", fmt.Sprint(fi.Size()))
			io.Copy(w, f)
		}
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	hs := &http.Server{Handler: h}
	go hs.Serve(ln)
	defer hs.Close()
	url := "http://" + ln.Addr().String() + "/obj"
	data := randBytes(4, benchObject)
	put := func() {
		req, _ := http.NewRequest(http.MethodPut, url, bytes.NewReader(data))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	b.Run("op=put,size=64MiB", func(b *testing.B) {
		b.SetBytes(benchObject)
		for i := 0; i < b.N; i++ {
			put()
		}
		b.ReportMetric(float64(benchObject)*float64(b.N)/b.Elapsed().Seconds()/1e6, "MB/s")
	})
	b.Run("op=get,size=64MiB", func(b *testing.B) {
		put()
		b.SetBytes(benchObject)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			resp, err := http.Get(url)
			if err != nil {
				b.Fatal(err)
			}
			if n, _ := io.Copy(io.Discard, resp.Body); n != benchObject {
				b.Fatalf("read %d", n)
			}
			resp.Body.Close()
		}
		b.ReportMetric(float64(benchObject)*float64(b.N)/b.Elapsed().Seconds()/1e6, "MB/s")
	})
}

// BenchmarkChunkedDecode measures the aws-chunked decoder alone (signature
// per 64 KiB chunk), from memory.
func BenchmarkChunkedDecode(b *testing.B) {
	const size = 16 << 20
	data := randBytes(5, size)
	auth := &authContext{signingKey: signingKey("secret", "20130524", "us-east-1"),
		seedSig: "0000000000000000000000000000000000000000000000000000000000000000",
		amzDate: awsDate, scope: "20130524/us-east-1/s3/aws4_request"}
	body := encodeChunked(data, 64<<10, auth)
	b.Run("size=16MiB,chunk=64KiB", func(b *testing.B) {
		b.SetBytes(size)
		for i := 0; i < b.N; i++ {
			cr, aerr := newChunkedReader(bytes.NewReader(body), streamingPayload, auth, "", size)
			if aerr != nil {
				b.Fatal(aerr)
			}
			if n, err := io.Copy(io.Discard, cr); err != nil || n != size {
				b.Fatalf("%d, %v", n, err)
			}
		}
		b.ReportMetric(float64(size)*float64(b.N)/b.Elapsed().Seconds()/1e6, "MB/s")
	})
}

// encodeChunked signs data as an aws-chunked body (the client side of
// chunkedReader), for the decoder benchmark.
func encodeChunked(data []byte, chunk int, auth *authContext) []byte {
	var out bytes.Buffer
	prev := auth.seedSig
	sign := func(p []byte) string {
		c := &chunkedReader{auth: auth, prevSig: prev, chunkHash: newSHA256()}
		c.chunkHash.Write(p)
		sts := "AWS4-HMAC-SHA256-PAYLOAD\n" + auth.amzDate + "\n" + auth.scope + "\n" + prev + "\n" + emptySHA256 + "\n" + hexSum(c.chunkHash)
		prev = hmacHex(auth.signingKey, sts)
		return prev
	}
	for off := 0; off < len(data); off += chunk {
		p := data[off:min(off+chunk, len(data))]
		fmt.Fprintf(&out, "%x;chunk-signature=%s\r\n", len(p), sign(p))
		out.Write(p)
		out.WriteString("\r\n")
	}
	fmt.Fprintf(&out, "0;chunk-signature=%s\r\n\r\n", sign(nil))
	return out.Bytes()
}
