package datafile

// What mnist_dir_test.go, an external test so that it can check
// dataset.IngestMNIST alongside LoadMNIST, uses of the internal tests.
const MNISTDirEnv = mnistDirEnv

var (
	WithoutGoToolchain = withoutGoToolchain
	CopyMNIST          = copyMNIST
	IDXFile            = idxFile
	Gz                 = gz
)
