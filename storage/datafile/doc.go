// Package datafile reads and writes dsae's local data files: .npy, numeric
// CSV, IDX (as MNIST ships) and labels files, and the built-in MNIST. It
// does no network I/O; a test checks that it links neither minio-go nor
// net/http.
//
// [Open] loads a local data reference into memory as a [Matrix] (rows of
// float32 features, with optional labels): the built-in MNIST ("mnist",
// "mnist:train", "mnist:test"), a 2-D .npy file or a numeric CSV file.
// Every problem with the input is an error that names the file and the
// position (row/line, column) and wraps [ErrBadInput].
//
//	ds, err := datafile.Open("mnist:test")
//	if err != nil {
//		return err // errors.Is(err, datafile.ErrBadInput) for user errors
//	}
//	row := ds.Row(0) // ds.D float32 values
//
// [OpenRows], [OpenLabels] and [OpenMNIST] stream a file's rows and labels
// instead, for a reader that does not hold the file in memory
// (dataset.Ingest).
//
// [WriteNPY] writes a float32 matrix as a .npy file numpy loads as it is;
// [WriteNPYHeader] writes the header of any dtype, order and shape, for a
// caller that streams the data after it. They are the one .npy writer in
// dsae: dataset.Ingest's shards and labels use the same code
// ([EncodeNPYHeader], [EncodeNPYHeaderSize]).
//
// A Matrix is a data set in memory, not a dataset in the object store:
// those are package dataset's, and dataset.LoadDataset reads one into a
// Matrix.
package datafile
