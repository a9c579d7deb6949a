package mnistdata

import (
	"embed"
	"io/fs"
)

// The names of the four files in [FS]: images as IDX3 (n, 28, 28) unsigned
// bytes, labels as IDX1 (n,) unsigned bytes, each gzip-compressed.
const (
	TrainImages = "train-images-idx3-ubyte.gz" // 60,000 training images
	TrainLabels = "train-labels-idx1-ubyte.gz" // their digits, 0–9
	TestImages  = "t10k-images-idx3-ubyte.gz"  // 10,000 test images
	TestLabels  = "t10k-labels-idx1-ubyte.gz"  // their digits, 0–9
)

//go:embed train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz
var files embed.FS

// FS returns a read-only file system holding exactly the four files named
// above, at its root. It is safe for concurrent use.
func FS() fs.FS { return files }
