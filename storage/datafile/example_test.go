package datafile_test

import (
	"fmt"

	"github.com/dsae/dsae/storage/datafile"
)

// Load the MNIST test split into memory.
func ExampleOpen() {
	ds, err := datafile.Open("mnist:test")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(ds.Rows, ds.D, ds.Labels[0])
	// Output: 10000 784 7
}
