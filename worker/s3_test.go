package worker

import (
	"bytes"
	"context"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/dsae/dsae/sae"
	"github.com/dsae/dsae/storage"
	"github.com/dsae/dsae/storage/datafile"
	"github.com/dsae/dsae/storage/dataset"
	"github.com/dsae/dsae/storage/s3server/s3test"
)

// startS3 serves an embedded S3 on a real loopback socket until the test
// ends and returns a client for bucket "dsae".
func startS3(t *testing.T) *storage.Client {
	t.Helper()
	srv := s3test.Start(t, s3test.Options{AccessKey: "ak-worker", SecretKey: "sk-worker-test"})
	cfg := storage.DefaultClientConfig()
	cfg.Endpoint, cfg.Bucket, cfg.AccessKey, cfg.SecretKey = srv.Endpoint, "dsae", srv.AccessKey, srv.SecretKey
	c, err := storage.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.EnsureBucket(context.Background()); err != nil {
		t.Fatal(err)
	}
	return c
}

// writeNPY writes ds as a float32 .npy file.
func writeNPY(t *testing.T, path string, ds *datafile.Matrix) {
	t.Helper()
	var b bytes.Buffer
	if err := datafile.WriteNPY(&b, ds.Rows, ds.D, ds.X); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// Training from a dataset in S3, read with ranged GETs through the
// prefetching reader, follows exactly the trajectory of training on the
// same rows in memory with the same layout: same batches, same order, same
// bits. The final train metrics, streamed through the same reader in
// storage order (the dataset is never loaded whole), are bitwise those
// Evaluate computes on the rows in memory.
func TestTrainFromS3MatchesMemory(t *testing.T) {
	const rows, d, chunk = 203, 12, 8
	ds := testData(rows, d, 5)
	path := filepath.Join(t.TempDir(), "x.npy")
	writeNPY(t, path, ds)
	client := startS3(t)
	ctx := context.Background()
	if _, err := dataset.Ingest(ctx, client, "toy", []string{path}, dataset.IngestOptions{ChunkRows: chunk}); err != nil {
		t.Fatal(err)
	}
	const cache = 8
	reader, err := dataset.OpenReader(ctx, client, "toy", dataset.ReaderOptions{Cache: cache})
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	if n := len(reader.Manifest().Shards); n != 1 {
		t.Fatalf("dataset has %d shards; this test needs one to match the in-memory layout", n)
	}

	cfg := testConfig(sae.SparsityKL)
	run := func(src Source, train *datafile.Matrix, progress func(StepResult, Progress)) ([]float32, *Report) {
		m, err := sae.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		// An eval batch that is no multiple of the chunk rows, and a last
		// batch of 3 rows.
		rep, err := LocalRun{Model: m, Optimizer: sae.DefaultOptimizerConfig(), Source: src, Train: train,
			Batch: 32, Steps: 20, Seed: 9, EvalBatch: 50, Progress: progress}.Run(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return m.Params, rep
	}
	var afterTraining dataset.ReaderStats
	fromS3, s3Rep := run(ReaderSource{R: reader}, nil, func(_ StepResult, p Progress) {
		if p.Done == p.Total {
			afterTraining = reader.Stats()
		}
	})
	fromMem, memRep := run(&MemorySource{DS: ds, ChunkRows: chunk}, ds, nil)
	for i := range fromS3 {
		if math.Float32bits(fromS3[i]) != math.Float32bits(fromMem[i]) {
			t.Fatalf("param %d: %v from S3, %v from memory", i, fromS3[i], fromMem[i])
		}
	}
	if got, want := sae.Metrics(s3Rep.Train), sae.Metrics(memRep.Train); got != want || got.Rows != rows {
		t.Fatalf("final train metrics from S3 %+v, from memory %+v (%d rows)", got, want, rows)
	}
	// The evaluation pass went through this reader: of the 26 chunks, at
	// most the cache's were still held when training ended.
	st := reader.Stats()
	chunks := int64((rows + chunk - 1) / chunk)
	if got := st.ChunksFetched - afterTraining.ChunksFetched; got < chunks-cache {
		t.Fatalf("the final evaluation fetched %d chunks through the training reader, want at least %d of %d", got, chunks-cache, chunks)
	}
	t.Logf("reader stats after %.1f epochs and the evaluation: %+v", 20*32.0/rows, st)
}
